"""Tables as text a retriever finds and an answer can quote: one line per row, each
cell named by its column's header ("Size: 3 MB; Ratio: 0.31."), so a row read alone
still says what its values are."""

from __future__ import annotations

MAX_CELL = 300  # characters of one cell kept (a cell holding a page of text is cut)


def _clean(cell: object) -> str:
    text = "" if cell is None else " ".join(str(cell).split())
    return text[:MAX_CELL]


def row_lines(rows: list[list[object]], header: bool = True) -> list[str]:
    """The table's rows as lines; the first row is the header when ``header`` (and is
    not repeated as a row). Empty rows and columns are dropped."""
    cells = [[_clean(c) for c in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return []
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    keep = [j for j in range(width) if any(row[j] for row in cells)]
    cells = [[row[j] for j in keep] for row in cells]
    if not header or len(cells) < 2 or not all(cells[0]):
        return [_stop(" | ".join(c for c in row if c)) for row in cells]
    names, body = cells[0], cells[1:]
    return [_stop("; ".join(f"{name}: {value}" for name, value in zip(names, row) if value))
            for row in body if any(row)]


def _stop(line: str) -> str:
    """A row ends as a sentence does, so an answer can quote it (qa.passages reads a
    short line without a final stop as a title)."""
    return line if line[-1:] in ".!?" else line + "."


def add_table(builder, rows: list[list[object]], header: bool = True) -> None:
    """A table as its own section(s) of the document under the current heading, so its
    rows are chunked together and apart from the prose around them."""
    lines = row_lines(rows, header)
    if lines:
        builder.table(lines)

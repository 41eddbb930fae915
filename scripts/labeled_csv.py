"""Write labelled rows as the CSV the classification and fine-tuning jobs read."""

from __future__ import annotations

import csv


def write(path: str, rows: list[dict[str, str]]) -> None:
    """``rows`` (dicts of one shape) to ``path`` with a header, and say how many."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{path}: {len(rows)} rows")

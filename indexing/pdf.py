"""A PDF as a Document with structure: paragraphs rebuilt from lines, section headings
from the outline (or, without one, from font size and weight), running headers,
footers and page numbers dropped, line-end hyphens mended, each block's page kept.

pypdfium2 (PDFium, Apache-2.0/BSD) reads the text layer: it was the fastest of the
permissive readers measured (docs/benchmarks.md) and renders pages for OCR. pypdf
stays as the fallback for a file PDFium refuses. Pages without a text layer go to
indexing.ocr when ``ocr`` allows.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from indexing.documents import Document, DocumentBuilder, PageProblem, property_metadata
from indexing.pdf_layout import Line, PageText, page_lines
from indexing.tables import add_table
from llama_rag.errors import LoadError

BAND = 0.09  # share of the page height at the top and bottom where running lines live
REPEAT_PAGES = 3  # a running line appears in the same band on at least this many pages
HEADING_RATIO = 1.12  # a line this much larger than the body text may be a heading
HEADING_WORDS = 14
MIN_TEXT_CHARS = 20  # a page with fewer characters than this has no text layer

_PAGE_NUMBER = re.compile(r"^(page\s*)?([\divxlcdm]+)(\s*(of|/)\s*\d+)?$", re.IGNORECASE)
_LINE_HYPHENS = "-\u2010\x02"  # PDFium reports a line-end hyphen it takes for a break as U+0002
_SOFT_HYPHENS = "\u00ad"
_LEADERS = re.compile(r"(\.\s?){5,}\s*[\divxlc]+$", re.IGNORECASE)  # a table of contents' line


@dataclass(frozen=True)
class PdfOptions:
    """How pages without a text layer are read: ``ocr`` auto (OCR those pages), off,
    force (OCR every page); ``ocr_language`` Tesseract's language codes."""

    ocr: str = "auto"
    ocr_language: str = "eng"


OcrRead = Callable[[list], list]  # PIL images -> their text, or the LoadError of each


def load_pdf(data: bytes, source: str, options: PdfOptions = PdfOptions(),
             ocr_read: OcrRead | None = None, ocr_batch: int = 4) -> list[Document]:
    """One Document for the file; LoadError when it cannot be read at all. Pages to OCR
    are rendered ``ocr_batch`` at a time (a 300 dpi page is 25 MB) and read by ``ocr_read``."""
    import pypdfium2 as pdfium

    if not data.strip():
        raise LoadError("empty file")
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise LoadError("encrypted PDF: it needs a password") from None
        return _pypdf_fallback(data, source, f"{exc}")
    try:
        return [_read(pdf, data, source, options, ocr_read, ocr_batch)]
    except _Unreadable as exc:
        return _pypdf_fallback(data, source, str(exc))
    finally:
        pdf.close()


class _Unreadable(Exception):
    """PDFium could open the file but read none of its pages."""


def _wants_ocr(options: PdfOptions, text: PageText) -> bool:
    return options.ocr == "force" or (options.ocr == "auto" and text.chars < MIN_TEXT_CHARS)


def _read(pdf, data: bytes, source: str, options: PdfOptions, ocr_read: OcrRead | None,
          ocr_batch: int) -> Document:
    import pypdfium2 as pdfium

    from indexing.ocr import render

    pages: list[PageText] = []
    problems: list[PageProblem] = []
    ruled: list[int] = []  # pages drawn with enough rules to hold a table
    for i in range(len(pdf)):
        try:
            page = pdf[i]
        except pdfium.PdfiumError as exc:
            problems.append(PageProblem(page=i + 1, error=f"cannot read the page: {exc}"))
            continue
        try:
            pages.append(page_lines(page, i + 1))
            if _ruled(page):
                ruled.append(i + 1)
        finally:
            page.close()
    scanned: dict[int, str] = {}  # page -> its OCR text
    todo = [p.number for p in pages if _wants_ocr(options, p)] if ocr_read else []
    for at in range(0, len(todo), ocr_batch):
        numbers = todo[at:at + ocr_batch]
        images = []
        for number in numbers:
            page = pdf[number - 1]
            try:
                images.append(render(page))
            finally:
                page.close()
        for number, got in zip(numbers, ocr_read(images)):
            if isinstance(got, LoadError):
                problems.append(PageProblem(page=number, error=got.message))
            elif not got.strip():
                problems.append(PageProblem(page=number, error="OCR found no text"))
            else:
                scanned[number] = got
    failed = {p.page for p in problems}
    pages = [p for p in pages if p.number not in failed or p.chars >= MIN_TEXT_CHARS]
    if not pages and problems:
        raise _Unreadable(problems[0].error)
    builder = DocumentBuilder()
    outline = _outline(pdf)
    running = _running_lines(pages)
    body = _body_size(pages)
    sizes = _heading_sizes(pages, body) if not outline else []
    tables = find_tables(data, ruled, {p.number: p.height for p in pages},
                         {p.number: _text_top(p, running) for p in pages
                          if p.number in ruled}) if ruled else {}
    words = vocabulary(pages)
    for page in pages:
        builder.page(page.number, ocr=page.number in scanned)
        if page.number in scanned:
            for para in re.split(r"\n\s*\n", scanned[page.number]):
                builder.block(_join_lines(para.splitlines()))
            continue
        lines = [ln for ln in page.lines if not _is_running(ln, page, running)
                 and not _LEADERS.search(ln.text)]
        found = tables.get(page.number, [])
        lines = [ln for ln in lines if not any(t.holds(ln) for t in found)]
        _emit(builder, lines, outline.get(page.number, []), body, sizes, found, words)
    title = _title(pdf) or Path(source).stem
    text, sections = builder.build()
    if not text.strip():
        if options.ocr == "off" and any(p.chars < MIN_TEXT_CHARS for p in pages):
            raise LoadError("no text layer (a scanned PDF?) and ingest.ocr is off")
        raise LoadError("no text found in the PDF" + (f" ({problems[0].error} on page "
                                                       f"{problems[0].page})" if problems else ""))
    return Document(id=source, source=source, title=title, text=text, sections=sections,
                    pages=builder.pages, problems=problems, metadata=_properties(pdf))


GRID_LINES = 3  # distinct rule positions each way that a grid of 2x2 cells needs
RULE = 2.0  # points: a path this thin is a rule (a line or a border)
SNAP = 3.0  # points: rules this near are one (pdfplumber's snap tolerance)
CONTINUED = 0.2  # a table this near a page's foot, and one this near the next's top, are one


@dataclass(frozen=True)
class Table:
    """A ruled table found by pdfplumber, in PDF space (y up), and its rows of cells."""

    top: float
    bottom: float
    x0: float
    x1: float
    rows: list

    def holds(self, line: Line) -> bool:
        middle = (line.top + line.bottom) / 2
        return self.bottom <= middle <= self.top and line.x0 >= self.x0 - 2 and line.x1 <= self.x1 + 2


def _ruled(page) -> bool:
    """The page draws a grid that could hold a ruled table: thin rules at three or more
    places across and three or more down, as pdfplumber's line strategy needs for two
    rows of two cells. Cheap (PDFium's path bounds). Boxes are not counted: code blocks'
    backgrounds at a few indents make grids of edges on most pages of a printed manual,
    which pdfplumber then parses whole to find no table in."""
    import pypdfium2 as pdfium

    across: set[int] = set()  # x of vertical rules, snapped
    down: set[int] = set()  # y of horizontal rules, snapped
    for path in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_PATH], max_depth=1):
        left, bottom, right, top = path.get_bounds()
        if top - bottom <= RULE < right - left:
            down.add(round(bottom / SNAP))
        elif right - left <= RULE < top - bottom:
            across.add(round(left / SNAP))
        if len(across) >= GRID_LINES and len(down) >= GRID_LINES:
            return True
    return False


def _text_top(page: PageText, running: set[tuple[str, str]]) -> float:
    """The highest bottom edge of the page's body lines (running lines aside), PDF space."""
    return max((ln.bottom for ln in page.lines if not _is_running(ln, page, running)),
               default=0.0)


def find_tables(data: bytes, numbers: list[int], heights: dict[int, float],
                text_tops: dict[int, float]) -> dict[int, list[Table]]:
    """pdfplumber's ruled tables on the given pages (it reads tables well, and only
    these pages pay for it); a page it cannot read keeps its lines as text. A table
    that goes on from the foot of the page before (same columns, at the top of this
    page, no body text above it: a caption or a paragraph there starts a new table)
    gets that table's header row back. ``text_tops``: each page's highest body line."""
    import pdfplumber

    found: dict[int, list[Table]] = {}
    last: tuple[int, list, bool] | None = None  # (page, header, ends at the page's foot)
    try:
        with pdfplumber.open(io.BytesIO(data)) as doc:
            for number in numbers:
                try:
                    page = doc.pages[number - 1]
                    height = heights.get(number, float(page.height))
                    for table in page.find_tables():
                        rows = table.extract()
                        if len(rows) < 2 or max(len(r) for r in rows) < 2:
                            continue
                        x0, top, x1, bottom = table.bbox
                        if (last is not None and last[0] == number - 1 and last[2]
                                and top < height * CONTINUED and len(last[1]) == len(rows[0])
                                and rows[0] != last[1]
                                and text_tops.get(number, 0.0) <= height - top + 1):
                            rows = [last[1]] + rows
                        last = (number, rows[0], bottom > height * (1 - CONTINUED))
                        found.setdefault(number, []).append(
                            Table(height - top, height - bottom, x0, x1, rows))
                except Exception:  # pdfminer's many parse errors: the page stays text
                    continue
    except Exception:  # a file pdfminer cannot open at all: its lines stay text
        return {}
    return found


def _title(pdf) -> str:
    try:
        return (pdf.get_metadata_dict().get("Title") or "").strip()
    except Exception:  # a broken info dictionary is no reason to lose the file
        return ""


_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


def _properties(pdf) -> dict:
    """The info dictionary's author, subject, keywords and dates as metadata."""
    try:
        info = pdf.get_metadata_dict()
    except Exception:  # a broken info dictionary is no reason to lose the file
        return {}
    values = {"author": info.get("Author"), "subject": info.get("Subject"),
              "keywords": info.get("Keywords")}
    for name, key in (("created", "CreationDate"), ("modified", "ModDate")):
        m = _PDF_DATE.match(info.get(key) or "")
        if m:
            year, month, day, hour, minute, second = (m.group(1), m.group(2) or "01",
                                                      m.group(3) or "01", m.group(4) or "00",
                                                      m.group(5) or "00", m.group(6) or "00")
            values[name] = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    return property_metadata(values)


def _outline(pdf) -> dict[int, list[tuple[int, str, float | None]]]:
    """page -> (level, title, y of its destination) of the PDF's bookmarks."""
    found: dict[int, list[tuple[int, str, float | None]]] = {}
    try:
        for mark in pdf.get_toc(max_depth=6):
            dest = mark.get_dest()
            title = " ".join((mark.get_title() or "").split())
            if dest is None or not title or dest.get_index() is None:
                continue
            mode, view = dest.get_view()
            y = float(view[1]) if mode == 1 and len(view) > 1 and view[1] else None
            found.setdefault(dest.get_index() + 1, []).append((mark.level + 1, title, y))
    except Exception:  # a broken outline: read the fonts instead
        return {}
    return found if sum(map(len, found.values())) >= 2 else {}


def _key(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def _band(line: Line, page: PageText) -> str | None:
    if line.bottom > page.height * (1 - BAND):
        return "top"
    return "bottom" if line.top < page.height * BAND else None


def _running_lines(pages: list[PageText]) -> set[tuple[str, str]]:
    """(band, text) of lines in the top or bottom band that repeat across pages, digits
    aside: a running header names its chapter, so it repeats only while the chapter lasts."""
    seen = Counter(k for p in pages for k in {(_band(ln, p), _key(ln.text)) for ln in p.lines
                                              if _band(ln, p)})
    return {k for k, n in seen.items() if n >= REPEAT_PAGES}


def _is_running(line: Line, page: PageText, running: set[tuple[str, str]]) -> bool:
    band = _band(line, page)
    return band is not None and ((band, _key(line.text)) in running
                                 or bool(_PAGE_NUMBER.match(line.text.strip())))


def _body_size(pages: list[PageText]) -> float:
    sizes = Counter()
    for p in pages:
        for ln in p.lines:
            sizes[round(ln.size)] += len(ln.text)
    return float(sizes.most_common(1)[0][0]) if sizes else 10.0


def _heading_sizes(pages: list[PageText], body: float) -> list[float]:
    """Font sizes larger than the body's that only short lines use, largest first:
    their rank is the heading level."""
    big = {round(ln.size) for p in pages for ln in p.lines
           if ln.size >= body * HEADING_RATIO and _headline(ln)}
    return sorted(big, reverse=True)[:4]


def _headline(line: Line) -> bool:
    text = line.text.strip()
    return (0 < line.words <= HEADING_WORDS and any(c.isalpha() for c in text)
            and not text.endswith((".", ",", ";")) and not line.mono)


def _level(line: Line, body: float, sizes: list[float]) -> int | None:
    """The heading level of a line by its font, or None for body text."""
    if not _headline(line):
        return None
    if round(line.size) in sizes:
        return sizes.index(round(line.size)) + 1
    if line.bold and abs(line.size - body) < 0.6 and line.words <= 8:
        return len(sizes) + 1
    return None


def _emit(builder: DocumentBuilder, lines: list[Line], marks: list[tuple[int, str, float | None]],
          body: float, sizes: list[float], tables: list[Table] = (),
          words: frozenset[str] = frozenset()) -> None:
    """A page's lines as headings and paragraphs, and its tables where they stand."""
    pending = list(marks)
    waiting = sorted(tables, key=lambda t: -t.top)
    para: list[Line] = []

    def flush() -> None:
        if para:
            builder.block("\n".join(ln.text for ln in para) if para[0].mono
                          else _join_lines([ln.text for ln in para], words))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        while waiting and waiting[0].top >= line.top:  # a table above this line
            flush()
            add_table(builder, waiting.pop(0).rows)
        # bookmarks whose place is above this line come first
        while pending and pending[0][2] is not None and line.top < pending[0][2] - 2 * line.size \
                and not _matches(pending[0][1], line.text):
            flush()
            builder.heading(pending[0][0], pending.pop(0)[1])
        match = next((m for m in pending if _matches(m[1], line.text)), None)
        if match is not None:
            flush()
            pending.remove(match)
            builder.heading(match[0], match[1])
            taken = _heading_lines(match[1], lines, i)
            i += taken
            continue
        level = None if marks else _level(line, body, sizes)
        if level is not None:
            flush()
            text = [line.text]
            while (i + 1 < len(lines) and _level(lines[i + 1], body, sizes) == level
                   and line.bottom - lines[i + 1].top < line.size):
                i += 1
                text.append(lines[i].text)
            builder.heading(level, " ".join(text))
            i += 1
            continue
        if para and _breaks(para[-1], line):
            flush()
        para.append(line)
        i += 1
    flush()
    for table in waiting:
        add_table(builder, table.rows)
    for level, title, _ in pending:
        builder.heading(level, title)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^\w]+", "", text)


def _matches(title: str, text: str) -> bool:
    """A line is a bookmark's title (or its first line; numbering may sit apart)."""
    t, s = _norm(title), _norm(text)
    return bool(s) and len(s) >= 3 and (t == s or (t.startswith(s) and len(s) >= len(t) / 3)
                                        or (s.endswith(t) and len(t) >= 3))


def _heading_lines(title: str, lines: list[Line], i: int) -> int:
    """How many lines from ``i`` the title spans."""
    want, got, k = _norm(title), "", i
    while k < len(lines) and len(got) < len(want) and want.startswith(got + _norm(lines[k].text)[:1]):
        got += _norm(lines[k].text)
        k += 1
    return max(1, k - i)


def _breaks(prev: Line, line: Line) -> bool:
    """A new paragraph starts at ``line``: a vertical gap, a change of font, an indent,
    or the last line ended short with a full stop."""
    gap = prev.bottom - line.top
    size = max(prev.size, 1.0)
    if gap > 0.55 * size or gap < -2 * size:  # a gap, or a jump up (a new column)
        return True
    if abs(prev.size - line.size) > 0.6 or prev.mono != line.mono:
        return True
    if prev.mono:
        return False
    if line.x0 - prev.x0 > 1.2 * size:  # first-line indent
        return True
    return prev.text.rstrip().endswith((".", ":", "!", "?")) and prev.x1 < line.x1 - 4 * size


_WORD = re.compile(r"[A-Za-z]+")


def vocabulary(pages: list[PageText]) -> frozenset[str]:
    """The words the document spells whole (lower case): a line-end hyphen is the
    typesetter's when the word it splits appears whole elsewhere."""
    return frozenset(w.lower() for p in pages for ln in p.lines for w in _WORD.findall(ln.text))


def _join_lines(lines: list[str], words: frozenset[str] = frozenset()) -> str:
    """Lines of one paragraph as one text. A soft hyphen (U+00AD) at a line end always
    joins its word; a hyphen ("decom-" + "pressed"; PDFium's U+0002 too, which it gives
    a hard hyphen as well) joins without it when the document spells the whole word
    elsewhere (or no vocabulary is given), else it stays, without the space
    ("floating-point")."""
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if out and out[-1] in _SOFT_HYPHENS:
            out = out[:-1] + line
        elif out and out[-1] in _LINE_HYPHENS and len(out) > 1 and out[-2].isalpha() \
                and line[:1].isalpha():
            head = _WORD.findall(out[-40:])[-1:] or [""]
            tail = _WORD.match(line)
            whole = (head[0] + (tail.group(0) if tail else "")).lower()
            known = whole in words if words else line[:1].islower()
            out = out[:-1] + ("" if known else "-") + line
        else:
            out = f"{out} {line}" if out else line
    return out.replace("\u00ad", "").replace("\x02", "")


def _pypdf_fallback(data: bytes, source: str, why: str) -> list[Document]:
    """pypdf's plain text per page, for a file PDFium cannot open."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        texts = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata.title if reader.metadata else None) or "")
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError) as exc:
        raise LoadError(f"corrupt or unsupported PDF: {why}; pypdf: "
                        f"{type(exc).__name__}: {exc}") from None
    builder = DocumentBuilder()
    for number, text in enumerate(texts, start=1):
        builder.page(number)
        builder.block(text.strip())
    body, sections = builder.build()
    if not body.strip():
        raise LoadError("no text found in the PDF")
    return [Document(id=source, source=source, title=title.strip() or Path(source).stem,
                     text=body, sections=sections, pages=builder.pages)]

"""The typed records that flow through indexing: documents, sections and chunks."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

from pydantic import BaseModel, Field

from indexing.access import split_groups


class Section(BaseModel):
    """A run of a document's text under one heading path; [start, end) into Document.text."""

    heading: list[str] = Field(default_factory=list)
    start: int
    end: int


class PageMark(BaseModel):
    """Where a page's text starts in Document.text (paged formats: PDF, slides)."""

    start: int
    number: int
    ocr: bool = False  # the page's text was read from its image


class PageProblem(BaseModel):
    """A page that could not be read; the rest of the file is indexed."""

    page: int
    error: str


class Document(BaseModel):
    """One loaded file (or one record of a .jsonl file), as plain text with its structure."""

    id: str
    source: str
    title: str
    text: str
    sections: list[Section]
    metadata: dict[str, Any] = Field(default_factory=dict)
    pages: list[PageMark] = Field(default_factory=list)
    problems: list[PageProblem] = Field(default_factory=list)

    def pages_of(self, start: int, end: int) -> tuple[list[int], list[int], bool]:
        """The page numbers text [start, end) lies on, where each after the first begins
        (offsets from ``start``), and whether any was OCR'd."""
        if not self.pages:
            return [], [], False
        starts = [p.start for p in self.pages]
        first = max(bisect_right(starts, start) - 1, 0)
        last = max(bisect_right(starts, max(end - 1, start)) - 1, first)
        marks = self.pages[first:last + 1]
        return ([p.number for p in marks], [p.start - start for p in marks[1:]],
                any(p.ocr for p in marks))


_ACCESS_FIELD = re.compile(r"access\s*:\s*([^;]+)", re.I)


def property_metadata(values: dict[str, Any]) -> dict[str, Any]:
    """A file's document properties (Office core properties, a PDF's info dictionary)
    as metadata: empty ones dropped, dates as ISO 8601; ``access: hr, finance`` in its
    keywords or category names its access groups (indexing.access)."""
    meta: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        meta[name] = value.isoformat() if hasattr(value, "isoformat") else str(value).strip()
    for name in ("keywords", "category"):
        m = _ACCESS_FIELD.search(str(meta.get(name, "")))
        if m:
            meta["access"] = split_groups(m.group(1))
    return meta


class Chunk(BaseModel):
    """A piece of a document small enough to embed; keeps where it came from."""

    id: str
    doc_id: str
    source: str
    title: str
    heading: list[str]
    text: str
    start: int
    end: int
    index: int
    metadata: dict[str, Any] = Field(default_factory=dict)

    def embed_text(self) -> str:
        """What the embedder sees: the heading path gives short chunks their topic."""
        path = " > ".join(self.heading) if self.heading else self.title
        return f"{path}\n{self.text}" if path else self.text


TABLE_ROWS = 1  # rows of a table per chunk at most
# Invisible characters that only hint where a line may break (zero-width space, soft
# hyphen, word joiner, a stray byte-order mark): read as text they split a word
# ("P-1Y-2M3D\u200bT-4H") so that neither search nor a quoted answer matches it.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u00ad\u2060\ufeff"))


class DocumentBuilder:
    """Collects headings and text blocks into a Document's text and sections."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._heading: list[str] = []
        self._sections: list[Section] = []
        self._section_start = 0
        self._pending_page: tuple[int, bool] | None = None
        self.pages: list[PageMark] = []

    def page(self, number: int, ocr: bool = False) -> None:
        """The blocks that follow are on page ``number``."""
        self._pending_page = (number, ocr)

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.translate(_INVISIBLE).split())
        if not text:
            return
        self._close_section()
        self._heading = self._heading[: max(level - 1, 0)] + [text]
        self.block(text)

    def table(self, rows: list[str], group: int = TABLE_ROWS) -> None:
        """A table's rows (indexing.tables), one block each, in sections of ``group``
        rows under the current heading: chunks never mix a table with the prose around
        it, and a chunk of a few rows stays close to a question about one of them (a
        whole table's embedding is like none of its rows)."""
        self._close_section()
        for at in range(0, len(rows), group):
            for row in rows[at:at + group]:
                self.block(row)
            self._close_section()

    def block(self, text: str) -> None:
        text = text.translate(_INVISIBLE).strip("\n")
        if not text.strip():
            return
        if self._parts:
            self._append("\n\n")
        if self._pending_page is not None:
            self.pages.append(PageMark(start=self._length, number=self._pending_page[0],
                                       ocr=self._pending_page[1]))
            self._pending_page = None
        self._append(text)

    def _append(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def _close_section(self) -> None:
        if self._length > self._section_start:
            start = self._section_start + (2 if self._section_start else 0)
            self._sections.append(Section(heading=list(self._heading), start=start, end=self._length))
        self._section_start = self._length

    def build(self) -> tuple[str, list[Section]]:
        self._close_section()
        return "".join(self._parts), self._sections

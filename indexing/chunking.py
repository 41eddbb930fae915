"""Split documents into token-bounded chunks that respect headings and paragraphs.

Units are paragraphs; a paragraph over the limit is split into sentences, and a
sentence over the limit into word runs. Units are packed greedily up to
``max_tokens``; the next chunk starts with the previous chunk's last units worth at
most ``overlap_tokens``. Chunks never cross a section (heading) boundary.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Iterator

from indexing.documents import Chunk, Document
from indexing.text import CLAUSE_BREAK, PARAGRAPH_BREAK, WORD_RUN, spans

TokenCounter = Callable[[str], int]

_PARA, _SENTENCE, _WORD = PARAGRAPH_BREAK, CLAUSE_BREAK, WORD_RUN


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    """Deterministic content-hash id: the same text at the same place gets the same id."""
    digest = hashlib.sha256(f"{doc_id}\x00{start}\x00{end}\x00{text}".encode()).hexdigest()
    return digest[:24]


def _metadata(doc: Document, start: int, end: int) -> dict:
    """The document's metadata, with the pages a chunk of a paged file lies on, where in
    its text each further page begins, and ``ocr`` when any was read from its image."""
    pages, breaks, ocr = doc.pages_of(start, end)
    if not pages:
        return doc.metadata
    return {**doc.metadata, "pages": pages, "page_breaks": breaks, **({"ocr": True} if ocr else {})}


class Chunker:
    """Token-aware chunker; the token counter is injected (the embedder's tokenizer in production)."""

    def __init__(self, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter) -> None:
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be greater than 0, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens}")
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.count = count_tokens

    def split(self, doc: Document) -> list[Chunk]:
        chunks = self._split(doc, skip_headings=True)
        # a page of headings alone (a chapter's contents page) is still a document
        return chunks or self._split(doc, skip_headings=False)

    def _split(self, doc: Document, skip_headings: bool) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in doc.sections:
            units = list(self._units(doc.text, section.start, section.end))
            heading_only = len(units) == 1 and section.heading and \
                doc.text[units[0][0]:units[0][1]].strip() == section.heading[-1]
            if heading_only and skip_headings:
                continue  # its heading is carried by the next section's heading path
            for start, end in self._pack(units):
                text = doc.text[start:end]
                chunks.append(Chunk(
                    id=chunk_id(doc.id, start, end, text), doc_id=doc.id, source=doc.source,
                    title=doc.title, heading=section.heading, text=text, start=start, end=end,
                    index=len(chunks), metadata=_metadata(doc, start, end),
                ))
        return chunks

    def _units(self, text: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(start, end, tokens) pieces of a section, each within max_tokens."""
        for p0, p1 in spans(_PARA, text[start:end], start):
            yield from self._fit(text, p0, p1, (_SENTENCE, _WORD))

    def _fit(self, text: str, start: int, end: int,
             finer: tuple[re.Pattern[str], ...]) -> Iterator[tuple[int, int, int]]:
        piece = text[start:end]
        if not piece.strip():
            return
        tokens = self.count(piece)
        if tokens <= self.max_tokens:
            yield start, end, tokens
            return
        if not finer:  # one "word" longer than a chunk: cut it by characters
            step = max(1, len(piece) * self.max_tokens // (tokens + 1))
            for s in range(start, end, step):
                yield s, min(s + step, end), self.count(text[s:min(s + step, end)])
            return
        pattern, rest = finer[0], finer[1:]
        if pattern is _WORD:
            yield from self._words(text, start, end)
            return
        for s0, s1 in spans(pattern, piece, start):
            yield from self._fit(text, s0, s1, rest)

    def _words(self, text: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """Runs of words under the limit, measured with the real counter."""
        words = [(start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]
        run: list[tuple[int, int]] = []
        for w in words:
            candidate = run + [w]
            if run and self.count(text[candidate[0][0]:w[1]]) > self.max_tokens:
                yield run[0][0], run[-1][1], self.count(text[run[0][0]:run[-1][1]])
                run = [w]
            else:
                run = candidate
            if len(run) == 1 and self.count(text[w[0]:w[1]]) > self.max_tokens:
                yield from self._fit(text, w[0], w[1], ())
                run = []
        if run:
            yield run[0][0], run[-1][1], self.count(text[run[0][0]:run[-1][1]])

    def _pack(self, units: list[tuple[int, int, int]]) -> Iterator[tuple[int, int]]:
        """Greedy packing of units into [start, end) spans with unit-level overlap."""
        current: list[tuple[int, int, int]] = []
        total = 0
        fresh = 0  # units in `current` that are not overlap from the previous chunk
        for unit in units:
            if current and total + unit[2] > self.max_tokens:
                yield current[0][0], current[-1][1]
                current, total = self._overlap(current, unit[2])
                fresh = 0
            current.append(unit)
            total += unit[2]
            fresh += 1
        if current and fresh:
            yield current[0][0], current[-1][1]

    def _overlap(self, previous: list[tuple[int, int, int]], incoming: int) -> tuple[list, int]:
        kept: list[tuple[int, int, int]] = []
        total = 0
        for unit in reversed(previous):
            if total + unit[2] > self.overlap_tokens or total + unit[2] + incoming > self.max_tokens:
                break
            kept.insert(0, unit)
            total += unit[2]
        return kept, total

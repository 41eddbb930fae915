"""What a corpus teaches about its own answers: (question, answering passage, passages
that do not answer it), derived from the indexed chunks' structure.

A FAQ question the document asks itself, a title line (a term of a definition or
option list, a numbered section title) or a section heading names what the passage
right under it says; that passage is the positive. The negatives are the passages
the untuned engine would weigh against it for the same question: the other openings
of the chunks the retriever returns for it (``neighbours``), the chunk's own among
them. Passages are cut exactly as qa.extractive cuts them at answer time, so the
scorer learns on what it will judge. Pairs are split by document (the sets' seeded
hash): a held-out document's pairs measure the tuned scorer on text it never saw.
Pure, no Ray: the neighbours come from a callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from pydantic import BaseModel

from indexing.text import STOP_WORDS, content_words
from qa.evaluation.sets import page_split
from qa.evaluation.sets_any import PAGE_HEADING
from qa.extractive import Passage, openings

PairKind = Literal["faq", "title", "heading"]
_COMMAND = re.compile(r"^\s*(?:\$|%|#|>>>)\s")
MAX_NEGATIVES = 7
MIN_DOCUMENTS = 10


class ChunkText(BaseModel):
    """What derivation needs of an indexed chunk."""

    source: str
    heading: list[str] = []
    text: str
    first_of_section: bool = True


class PassagePair(BaseModel):
    question: str
    positive: str
    negatives: list[str] = []
    source: str
    section: str = ""  # the chunk's top heading: the split's unit in a corpus of few files
    kind: PairKind


def _good_question(text: str) -> bool:
    """A question or title, not a wrapped line's fragment ("checksum of the packfile,
    and") or a command line."""
    words = text.split()
    return (2 <= len(words) <= 30 and len(content_words(text)) >= 1
            and not text.rstrip(":").endswith((",", ";", "-"))
            and words[-1].lower().strip(":") not in STOP_WORDS and not _COMMAND.match(text))


def chunk_pairs(chunk: ChunkText) -> Iterator[PassagePair]:
    """The prompts of one chunk with the passage under each (no negatives yet)."""
    seen = openings([_Hit(chunk.text)])
    passage = dict(zip(seen.opens, seen.texts))
    found = seen.found
    top = chunk.heading[0] if chunk.heading else ""
    for i, unit in enumerate(found):
        if not unit.prompt or (i + 1 < len(found) and found[i + 1].prompt):
            continue  # the last unit of a prompt run names what follows
        under = next((k for k in range(i + 1, min(i + 3, len(found))) if k in passage
                      and found[k].words >= 5), None)
        if under is None:
            continue
        start = i
        while start > 0 and found[start - 1].prompt and found[start - 1].block >= unit.block - 1:
            start -= 1
        question = " ".join(u.text for u in found[start:i + 1])
        if _good_question(question) and question not in passage[under]:
            yield PassagePair(question=question, positive=passage[under], source=chunk.source,
                              section=top, kind="faq" if question.endswith("?") else "title")
    title = chunk.heading[-1].strip() if chunk.heading else ""
    if chunk.first_of_section and _good_question(title) and len(title.split()) < 10 \
            and not PAGE_HEADING.match(title):
        first = next((k for k in seen.opens if found[k].words >= 5), None)
        if first is not None and not any(u.prompt for u in found[:first]):
            yield PassagePair(question=title, positive=passage[first], source=chunk.source,
                              section=top, kind="heading")


def derive(chunks: Iterable[ChunkText], neighbours: Callable[[str], Sequence[Passage]],
           limit: int | None = None) -> list[PassagePair]:
    """Every chunk's pairs (one per question), each with the passages of its retrieved
    neighbours that are not the positive as negatives; at most ``limit`` pairs."""
    pairs: dict[str, PassagePair] = {}
    for chunk in chunks:
        for pair in chunk_pairs(chunk):
            pairs.setdefault(pair.question.lower(), pair)
    out = []
    for pair in list(pairs.values())[:limit]:
        head = _head(pair.positive)
        negatives = [t for t in openings(neighbours(pair.question)).texts
                     if head not in t and _head(t) not in pair.positive]
        if negatives:
            out.append(pair.model_copy(update={"negatives": negatives[:MAX_NEGATIVES]}))
    return out


def split(pairs: Sequence[PassagePair], seed: int, held_out: float
          ) -> tuple[list[PassagePair], list[PassagePair]]:
    """(train, held-out) by document; by a document's top section where the corpus has
    fewer than ``MIN_DOCUMENTS`` files (five PDF manuals would hold out one or none)."""
    by_section = len({p.source for p in pairs}) < MIN_DOCUMENTS

    def unit(p: PassagePair) -> str:
        return f"{p.source}#{p.section}" if by_section else p.source

    train = [p for p in pairs if page_split(unit(p), seed, held_out) == "train"]
    test = [p for p in pairs if page_split(unit(p), seed, held_out) == "test"]
    return train, test


def _head(passage: str) -> str:
    """A passage's first 60 characters: overlapping windows share them."""
    return passage[:60]


class _Hit:
    """A chunk as qa.extractive reads it."""

    def __init__(self, text: str) -> None:
        self.text, self.source, self.heading, self.start, self.end = text, "", [], 0, 0


"""Grounded answers: relevance, the citation markers, attribution and refusals.

Pure functions, so the rules are unit-tested without Ray; the prompt is qa.prompts
and the request/response models llama_rag.protocol.
"""

from __future__ import annotations

import re

from indexing.text import literals, spells
from llama_rag.config import QASettings
from llama_rag.protocol import Citation, Hit
from qa.prompts import REFUSAL

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_REFUSALS = re.compile(
    r"(do(es)? not contain|don't contain|doesn't contain|not (mentioned|found|provided) in "
    r"the (documents|context)|cannot (be )?answer|can't answer|no information (about|on)|"
    r"i (do not|don't) know)", re.I)


def relevant(hits: list[Hit], settings: QASettings, query: str = "") -> list[Hit]:
    """The hits that pass the relevance threshold (hits arrive best first), and those
    below it that spell out every literal the query names (a value, a code, an option:
    indexing.text.literals), which the embedder scores low and the lexical side found."""
    named = literals(query)
    return [h for h in hits if h.score >= settings.min_score
            or (named and all(spells(h.text, lit) for lit in named))]


def cited_numbers(answer: str, available: int) -> list[int]:
    """Document numbers the answer cites with [n] or [n, m], in first-use order."""
    seen: list[int] = []
    for group in _CITATION.findall(answer):
        for part in group.split(","):
            n = int(part)
            if 1 <= n <= available and n not in seen:
                seen.append(n)
    return seen


def attribute(text: str, similarity: list[list[float]], spans: list[tuple[int, int]],
              min_similarity: float) -> str:
    """Insert ``[n]`` after each sentence for the quoted document it is most similar to.

    Small models rarely write citation markers themselves; ``similarity[i][j]`` is
    the cosine similarity of sentence ``spans[i]`` and document ``j + 1`` (from the
    retriever's embedder). Sentences like no document get no marker.
    """
    out, last = [], 0
    for (start, end), row in zip(spans, similarity):
        best = max(range(len(row)), key=row.__getitem__) if row else None
        sentence = text[start:end].rstrip()
        cut = start + len(sentence)
        out.append(text[last:cut])
        if best is not None and row[best] >= min_similarity:
            stop = sentence[-1] if sentence[-1:] in ".!?" else ""
            if stop:
                out[-1] = out[-1][:-1]
            out.append(f" [{best + 1}]{stop}")
        last = cut
    out.append(text[last:])
    return "".join(out)


def is_refusal(answer: str) -> bool:
    """The model said the documents do not hold the answer (or said nothing)."""
    return not answer.strip() or REFUSAL.lower() in answer.lower() or bool(
        _REFUSALS.search(answer[:300]))


def citation(n: int, hit: Hit, quote: str | None = None) -> Citation:
    """The citation of hit ``n``; its snippet starts at ``quote`` when the answer quotes
    a sentence of it (extractive answers), else at the chunk's start."""
    text = " ".join(hit.text.split())
    at = text.find(quote) if quote else -1
    snippet = text[max(at, 0):][:300]
    return Citation(n=n, source=hit.source, title=hit.title, snippet=snippet,
                    score=round(hit.score, 4), chunk_id=hit.chunk_id,
                    page=hit.page_at(_offset(hit.text, quote)) if hit.page else None)


def _offset(text: str, quote: str | None) -> int:
    """Where ``quote`` (whitespace normalised) begins in ``text``; 0 when it is not there."""
    if not quote:
        return 0
    words = quote.split()[:12]
    found = re.search(r"\s+".join(map(re.escape, words)), text) if words else None
    return found.start() if found else 0


def citations_used(answer: str, hits: list[Hit]) -> list[Citation]:
    """The citations the answer actually marks, in the order it first uses them."""
    return [citation(n, hits[n - 1]) for n in cited_numbers(answer, len(hits))]

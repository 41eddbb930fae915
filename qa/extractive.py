"""Extractive answers: quote the sentence of the retrieved text that answers the question.

A small model paraphrases documentation into fluent errors; the sentence that
documentation itself gives is right by construction. Pure (no Ray); qa.answerer
runs it for /v1/ask's ``extractive`` mode, `llama-rag eval` and the index gate.

- ``most_similar`` (the general engine): the sentence of the hits most similar to
  the question by the retriever's embedder, a small word-overlap bonus breaking
  ties; headings, list items, code and questions are never quoted. For an index of
  API reference pages, qa.api_reference answers first.
- ``overlap_sentence`` (the baseline every eval report scores beside it): the
  sentence of the top hits that shares most words with the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from indexing.api_entries import is_signature
from indexing.text import content_words, paragraphs, sentences


@dataclass(frozen=True)
class Quote:
    """One sentence of the ``n``-th quoted hit (1-based, as the [n] marker says)."""

    n: int
    text: str
    score: float = 0.0


class Passage(Protocol):
    """What a selector needs of a retrieved chunk (llama_rag.protocol.Hit has these)."""

    source: str
    text: str
    heading: list[str]
    start: int
    end: int


class Similarity(Protocol):
    """Cosine similarity by the retriever's embedder (RetrieverCore has it)."""

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]: ...


def candidates(hits: Sequence[Passage]) -> list[Quote]:
    """Every sentence of the hits worth quoting (not code-only or signature lines)."""
    out = []
    for n, hit in enumerate(hits, start=1):
        for para in paragraphs(hit.text):
            if is_signature(para) or "\n" in para:  # a signature, or code (a <pre> block)
                continue
            for s in sentences(para):
                if len(s.split()) >= 4 and s[-1:] in ".!":  # not a heading, list item or question
                    out.append(Quote(n, s))
    return out


def overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that ``sentence`` contains."""
    q = content_words(question)
    return len(q & content_words(sentence)) / len(q) if q else 0.0


def overlap_sentence(question: str, hits: Sequence[Passage], top: int = 3) -> Quote | None:
    """The baseline: the sentence of the top ``top`` hits sharing most words with the question."""
    found = candidates(hits[:top])
    if not found:
        return None
    return max(found, key=lambda q: (overlap(question, q.text), -q.n))


def best(question: str, pool: list[Quote], sims: Sequence[float],
         overlap_weight: float = 0.2) -> Quote | None:
    """The candidate most similar to the question (``sims``: cosine, same order as ``pool``),
    a small word-overlap bonus breaking near-ties."""
    scored = [Quote(q.n, q.text, float(s) + overlap_weight * overlap(question, q.text))
              for q, s in zip(pool, sims)]
    return max(scored, key=lambda q: (q.score, -q.n)) if scored else None


def most_similar(question: str, hits: Sequence[Passage], embedder: Similarity) -> Quote | None:
    """The general engine's answer: the candidate sentence most similar to the question."""
    pool = candidates(hits)
    if not pool:
        return None
    return best(question, pool, embedder.similarity([question], [q.text for q in pool])[0])


def render(quote: Quote) -> str:
    """The answer text: the quoted sentence with its marker before the final stop."""
    text = quote.text.rstrip()
    stop = text[-1] if text[-1:] in ".!?" else ""
    return f"{text[:-1] if stop else text} [{quote.n}]{stop}"

"""Grounded answers: the prompt, the citation markers and the answerable decision.

Pure functions and the request/response models of ``/v1/ask``, so the rules are
unit-tested without Ray. Retrieved chunks reach the model as quoted data inside
``<document>`` fences, after instructions that tell it to treat them as data;
anything in a chunk that looks like a fence is neutralised first.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from indexing.store import Hit
from llama_rag.config import QASettings
from llama_rag.prompts import REFUSAL
from llama_rag.config import RetrievalMode as Mode
from services.retriever import Collection, Filters, NonBlank

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r".+?(?:[.!?](?=\s|$)|\n|$)", re.S)
_REFUSALS = re.compile(
    r"(do(es)? not contain|don't contain|doesn't contain|not (mentioned|found|provided) in "
    r"the (documents|context)|cannot (be )?answer|can't answer|no information (about|on)|"
    r"i (do not|don't) know)", re.I)


class AskRequest(BaseModel):
    model_config = {"extra": "forbid"}

    question: NonBlank = Field(..., min_length=1)
    k: int | None = Field(None, ge=1, le=20, description="Chunks to quote (default qa.k).")
    filters: Filters | None = None
    collection: Collection | None = None
    mode: Mode | None = Field(None, description="Retrieval mode (default: retrieval.mode).")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)


class Citation(BaseModel):
    n: int
    source: str
    title: str
    snippet: str
    score: float
    chunk_id: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Timings(BaseModel):
    retrieve_ms: float
    generate_ms: float


class AskResponse(BaseModel):
    object: Literal["answer"] = "answer"
    answer: str
    answerable: bool
    citations: list[Citation]
    citation_mode: Literal["model", "attributed", "none"] = Field(
        "none", description="model: the LLM wrote the [n] markers; attributed: it wrote none, "
        "so each sentence was marked with its most similar quoted document.")
    usage: Usage
    timings: Timings
    index_version: str | None = None


def relevant(hits: list[Hit], settings: QASettings) -> list[Hit]:
    """The hits that pass the relevance threshold (hits arrive best first)."""
    return [h for h in hits if h.score >= settings.min_score]


def cited_numbers(answer: str, available: int) -> list[int]:
    """Document numbers the answer cites with [n] or [n, m], in first-use order."""
    seen: list[int] = []
    for group in _CITATION.findall(answer):
        for part in group.split(","):
            n = int(part)
            if 1 <= n <= available and n not in seen:
                seen.append(n)
    return seen


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line with some words in it."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text)
            if len(m.group(0).strip()) >= 20 and not m.group(0).lstrip().startswith("```")]


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


def citation(n: int, hit: Hit) -> Citation:
    snippet = " ".join(hit.text.split())[:300]
    return Citation(n=n, source=hit.source, title=hit.title, snippet=snippet,
                    score=round(hit.score, 4), chunk_id=hit.chunk_id)


def citations_used(answer: str, hits: list[Hit]) -> list[Citation]:
    """The citations the answer actually marks, in the order it first uses them."""
    return [citation(n, hits[n - 1]) for n in cited_numbers(answer, len(hits))]

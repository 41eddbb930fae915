"""One search over a loaded version: dense, lexical or hybrid, then optional
reranking and MMR. No Serve here: the retriever deployment, the CLI and
`llama-rag eval` all call ``search_version``.

Every hit's ``score`` is the cosine similarity of its chunk to the query, whatever
the mode ranked by, so ``qa.min_score`` means the same thing in every mode; the
order is the mode's. Filters apply in every mode: the allowed rows are searched
exactly (dense) or masked (lexical) before fusion.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from indexing.fusion import mmr, rrf, top_rows
from indexing.store import IndexVersion
from llama_rag.config import RetrievalMode as Mode
from llama_rag.config import RetrievalSettings
from llama_rag.protocol import Hit


class Reranker(Protocol):
    """Re-scores candidate texts for a query; higher is better."""

    def scores(self, query: str, texts: list[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder (named by ``retrieval.reranker``)."""

    def __init__(self, name_or_path: str, device: str | None = None) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(name_or_path, device=device)

    def scores(self, query: str, texts: list[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]


POOL = 4  # dense candidates per row kept, when the document's opening re-ranks them


def dense_rows(version: IndexVersion, vector: np.ndarray, n: int,
               rows: np.ndarray | None, document_weight: float = 0.0) -> list[int]:
    """The ``n`` rows nearest ``vector``; with ``document_weight``, each row's likeness
    plus that share of its document's opening's (indexing.store.IndexVersion.openings):
    a chunk deep in a reference page ("-h: print sizes like 1K 234M") does not say what
    the page is for, and its page's title and summary do ("ls - list directory contents")."""
    want = n * POOL if document_weight else n
    if rows is not None:  # exact over the allowed rows: a filter loses no recall
        scores = np.zeros(version.chunks.num_rows, dtype=np.float32)
        scores[rows] = version.rows_vectors(rows) @ np.asarray(vector, dtype=np.float32)
        pool = top_rows(scores, want, rows)
    else:
        pool = version.nearest(vector, want)[0]
    if not document_weight or not pool:
        return pool[:n]
    query = np.asarray(vector, dtype=np.float32)
    openings = version.openings[pool]
    own = np.asarray(version.vectors[pool], dtype=np.float32) @ query
    opening = np.asarray(version.vectors[openings], dtype=np.float32) @ query
    if rows is not None:  # a chunk the caller may not read lends nothing
        opening = np.where(np.isin(openings, rows), opening, 0.0)
    scores = own + document_weight * opening
    return [pool[i] for i in np.argsort(-scores, kind="stable")[:n]]


def lexical_rows(version: IndexVersion, query: str, n: int, rows: np.ndarray | None) -> list[int]:
    scores = version.lexical.scores(query, version.chunks.num_rows, rows)
    return top_rows(scores, n, rows, positive_only=True)


def search_version(version: IndexVersion, query: str, vector: np.ndarray, k: int,
                   settings: RetrievalSettings, *, mode: Mode | None = None,
                   rows: np.ndarray | None = None, use_mmr: bool | None = None,
                   reranker: Reranker | None = None) -> list[Hit]:
    """The ``k`` best hits for ``query`` (``vector`` is its embedding)."""
    if k <= 0:
        raise ValueError(f"k must be greater than 0, got {k}")
    if version.chunks.num_rows == 0:
        return []
    mode = mode or settings.mode
    n = max(k, settings.candidates)
    rankings = []
    if mode in ("dense", "hybrid"):
        rankings.append(dense_rows(version, vector, n, rows, settings.document_weight))
    if mode in ("lexical", "hybrid"):
        rankings.append(lexical_rows(version, query, n, rows))
    ranked = rankings[0] if len(rankings) == 1 else [
        r for r, _ in rrf(rankings, settings.rrf_k, [1.0, settings.lexical_weight])]
    if reranker is not None and ranked:
        head = ranked[: settings.rerank_candidates]
        texts = version.chunks.take(head).column("text").to_pylist()
        order = np.argsort(-np.asarray(reranker.scores(query, texts)), kind="stable")
        ranked = [head[i] for i in order] + ranked[len(head):]
    if (settings.mmr if use_mmr is None else use_mmr) and ranked:
        # relevance by rank in the mode's order, so MMR keeps the mode's preferences
        relevance = 1.0 - np.arange(len(ranked)) / len(ranked)
        picked = mmr(ranked, relevance, np.asarray(version.vectors[ranked]), k,
                     settings.mmr_lambda)
    else:
        picked = ranked[:k]
    if not picked:
        return []
    cosine = np.asarray(version.vectors[picked]) @ np.asarray(vector, dtype=np.float32)
    return version.hits(picked, [float(c) for c in cosine])

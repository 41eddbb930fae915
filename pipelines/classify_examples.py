"""Examples chosen per row: the ``k`` labeled examples nearest to the row's text.

Fixed few-shot examples show a small model the same handful of rows whatever it is
asked; the nearest labeled rows (cosine over the embedder's unit vectors) show it
the cases most like this one, which is kNN classification handed to the LLM.
The stage runs before the LLM stage and adds an ``examples`` column of indices
into the examples file, in order of similarity (nearest last, next to the row).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llama_rag.config import Settings
from llama_rag.prompts import Example


def nearest(queries: np.ndarray, examples: np.ndarray, k: int) -> list[list[int]]:
    """For each query row, the indices of its ``k`` most similar examples, nearest last."""
    scores = queries @ examples.T
    k = min(k, examples.shape[0])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    ordered = np.take_along_axis(top, np.argsort(np.take_along_axis(scores, top, axis=1),
                                                 axis=1), axis=1)
    return ordered.tolist()


class NearestExamples:
    """Ray Data actor: embeds each batch of rows and adds the indices of their nearest
    examples."""

    def __init__(self, settings: Settings, examples: list[Example], k: int) -> None:
        from indexing.embedder import job_embedder, resolve_embedder

        self.embedder = job_embedder(resolve_embedder(settings), settings)
        self.vectors = self.embedder.encode([e.text for e in examples])
        self.k = k

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        queries = self.embedder.encode([str(t) for t in batch["text"]])
        return {**batch, "examples": nearest(queries, self.vectors, self.k)}


def chosen(examples: list[Example], batch: dict[str, Any], i: int) -> list[Example] | None:
    """Row ``i``'s own examples when the batch went through :class:`NearestExamples`
    (None: the spec's fixed examples)."""
    picked = batch.get("examples")
    return None if picked is None else [examples[j] for j in picked[i]]

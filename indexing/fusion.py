"""Rank fusion and diversification over row ids (pure functions, no index needed).

Reciprocal-rank fusion needs no score calibration between BM25 and cosine
similarity, which live on different scales; MMR trades a little relevance for
hits from different places, so one long page does not take every slot.
"""

from __future__ import annotations

import numpy as np


def top_rows(scores: np.ndarray, n: int, rows: np.ndarray | None = None,
             positive_only: bool = False) -> list[int]:
    """The ``n`` best row ids by ``scores`` (all rows, or only ``rows``), best first."""
    candidates = np.arange(len(scores)) if rows is None else np.asarray(rows, dtype=np.int64)
    if positive_only:
        candidates = candidates[scores[candidates] > 0]
    if len(candidates) == 0 or n <= 0:
        return []
    values = scores[candidates]
    n = min(n, len(candidates))
    best = np.argpartition(-values, n - 1)[:n]
    best = best[np.lexsort((candidates[best], -values[best]))]  # score desc, then row id
    return [int(candidates[i]) for i in best]


def rrf(rankings: list[list[int]], k: int = 60,
        weights: list[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each row scores sum(weight / (k + rank)) over the rankings."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, row in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def mmr(rows: list[int], relevance: np.ndarray, vectors: np.ndarray, k: int,
        lam: float) -> list[int]:
    """Maximal marginal relevance over ``rows`` (best first, with ``relevance`` per row):
    each pick maximises ``lam * relevance - (1 - lam) * max similarity to the picks``."""
    if not rows:
        return []
    vecs = np.asarray(vectors, dtype=np.float32)
    chosen: list[int] = []
    left = list(range(len(rows)))
    nearest = np.full(len(rows), -np.inf, dtype=np.float32)
    while left and len(chosen) < k:
        if chosen:
            gains = [lam * relevance[i] - (1 - lam) * nearest[i] for i in left]
        else:
            gains = [relevance[i] for i in left]
        pick = left.pop(int(np.argmax(gains)))
        chosen.append(pick)
        nearest = np.maximum(nearest, vecs @ vecs[pick])
    return [rows[i] for i in chosen]

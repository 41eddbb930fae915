"""Build FAISS indexes through the index factory, with parameters derived from the data.

Vectors are unit-length, so inner product is cosine similarity. ``auto`` keeps an
exact flat index while it is small (exact and fast enough) and switches to HNSW above.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel

from llama_rag.config import IndexSettings
from llama_rag.errors import InvalidInputError

PQ_MIN_TRAIN = 256  # 8-bit PQ codebooks need at least this many training vectors


class IndexInfo(BaseModel):
    kind: str
    factory: str
    count: int
    dim: int
    search_params: dict[str, int]
    refine: int = 0  # candidates per wanted hit that are re-scored exactly (IVF-PQ)


def choose_kind(settings: IndexSettings, count: int) -> str:
    if settings.kind != "auto":
        return settings.kind
    return "flat" if count <= settings.flat_max else "hnsw"


def _ivf_params(settings: IndexSettings, count: int) -> tuple[int, int]:
    nlist = settings.ivf_nlist or max(1, min(int(4 * math.sqrt(count)), count // 39))
    nprobe = settings.ivf_nprobe or max(8, nlist // 8)
    return nlist, min(nprobe, nlist)


def describe(settings: IndexSettings, count: int, dim: int) -> IndexInfo:
    """The factory string and query-time parameters for ``count`` vectors of ``dim``."""
    kind = choose_kind(settings, count)
    if kind == "flat":
        return IndexInfo(kind=kind, factory="Flat", count=count, dim=dim, search_params={})
    if kind == "hnsw":
        return IndexInfo(kind=kind, factory=f"HNSW{settings.hnsw_m},Flat", count=count, dim=dim,
                         search_params={"efSearch": settings.hnsw_ef_search})
    if dim % settings.pq_m:
        raise InvalidInputError(
            f"index.pq_m ({settings.pq_m}) must divide the embedding dimension {dim}",
            param="index.pq_m")
    if count < PQ_MIN_TRAIN:
        raise InvalidInputError(
            f"an ivfpq index needs at least {PQ_MIN_TRAIN} vectors to train, got {count}; "
            "use index.kind=flat or auto", param="index.kind")
    nlist, nprobe = _ivf_params(settings, count)
    return IndexInfo(kind=kind, factory=f"IVF{nlist},PQ{settings.pq_m}", count=count, dim=dim,
                     search_params={"nprobe": nprobe}, refine=settings.pq_refine)


def build(vectors: np.ndarray, settings: IndexSettings):
    """A trained, filled FAISS index over ``vectors`` (row i gets id i) and its description."""
    import faiss

    count, dim = vectors.shape
    info = describe(settings, count, dim)
    index = faiss.index_factory(dim, info.factory, faiss.METRIC_INNER_PRODUCT)
    if info.kind == "hnsw":
        index.hnsw.efConstruction = settings.hnsw_ef_construction
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = vectors if count <= 200_000 else vectors[rng.choice(count, 200_000, replace=False)]
        index.train(sample)
    if count:
        index.add(vectors)
    apply_search_params(index, info)
    return index, info


def apply_search_params(index, info: IndexInfo) -> None:
    """Query-time knobs (efSearch, nprobe) are not all saved with the index: set them on load."""
    import faiss

    space = faiss.ParameterSpace()
    for name, value in info.search_params.items():
        space.set_index_parameter(index, name, value)


def search(index, info: IndexInfo, vectors: np.ndarray, queries: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best rows per query; compressed indexes are re-scored exactly.

    PQ codes keep 48 bytes of a 1,536-byte vector, so their scores are coarse; the
    exact vectors (memory-mapped, so not held in RAM) fix the order of the best
    ``k * refine`` candidates cheaply.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, info.dim)
    if not info.refine:
        return index.search(queries, k)
    _, candidates = index.search(queries, k * info.refine)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for row, (query, ids) in enumerate(zip(queries, candidates)):
        ids = ids[ids >= 0]
        order = np.sort(ids)  # sorted reads are kinder to a memory-mapped file
        exact = np.asarray(vectors[order]) @ query
        best = np.argsort(-exact)[:k]
        out_scores[row, : len(best)] = exact[best]
        out_ids[row, : len(best)] = order[best]
    return out_scores, out_ids

"""The retrieval deployment: embeds queries and searches the published index.

It loads the version named by ``CURRENT`` and polls that file on a daemon thread;
when a new version is published it loads it beside the old one and swaps one
reference, so a query in flight finishes on the version it started with and none
fails. Filters
(source prefix, file type) search exactly over the rows they allow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, Field, field_validator

from indexing.store import Hit, IndexStore, IndexVersion
from llama_rag.config import Settings
from llama_rag.errors import IndexUnavailableError

log = logging.getLogger("llama_rag.retriever")


class Filters(BaseModel):
    """Metadata filters; every given one must hold."""

    model_config = {"extra": "forbid"}

    source_prefix: str | None = Field(
        None, max_length=1000, description="Only sources starting with this (e.g. library/).")
    file_type: list[str] | None = Field(
        None, max_length=20, description="Only these suffixes, e.g. ['html', 'pdf'].")

    @field_validator("file_type")
    @classmethod
    def _normalise(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.lower().lstrip(".") for v in value]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]


class SearchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    query: NonBlank = Field(..., min_length=1, max_length=4000)
    k: int = Field(5, ge=1, le=100)
    filters: Filters | None = None


class SearchResponse(BaseModel):
    object: Literal["search.result"] = "search.result"
    version: str
    hits: list[Hit]
    retrieve_ms: float


def allowed_rows(version: IndexVersion, filters: Filters) -> np.ndarray:
    """Row ids of ``version`` that pass ``filters`` (sources are relative paths)."""
    sources = version.chunks.column("source").to_pylist()
    keep = np.ones(len(sources), dtype=bool)
    if filters.source_prefix:
        keep &= np.fromiter((s.startswith(filters.source_prefix) for s in sources), bool,
                            len(sources))
    if filters.file_type:
        wanted = set(filters.file_type)
        keep &= np.fromiter((s.rsplit(".", 1)[-1].lower() in wanted for s in sources), bool,
                            len(sources))
    return np.flatnonzero(keep)


class RetrieverCore:
    """The deployment's logic without Serve, so unit tests and the CLI can use it."""

    def __init__(self, settings: Settings) -> None:
        from indexing.embedder import Embedder
        from llama_rag.models import apply_offline_policy, resolve_embedder

        apply_offline_policy(settings.models)
        ref = resolve_embedder(settings)
        self.store = IndexStore(settings.index.dir)
        self.embedder = Embedder(ref.name, ref.path, settings.models.embed_device)
        self.version: IndexVersion | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Load the version ``CURRENT`` names if it is not the loaded one; True if swapped.

        A version that fails to load is logged and the old one kept serving.
        """
        current = self.store.current()
        if current is None or (self.version and self.version.version == current):
            return False
        try:
            loaded = self.store.open(current)
            loaded.check_embedder(self.embedder.info)
        except Exception as exc:  # a broken or foreign version must not stop serving
            log.error("cannot load index version %s: %s", current, exc)
            return False
        self.version = loaded
        log.info("serving index version %s (%d chunks)", current, loaded.chunks.num_rows)
        return True

    def search(self, request: SearchRequest) -> SearchResponse:
        version = self.version  # one reference for the whole query
        if version is None:
            raise IndexUnavailableError(
                f"no index is published in {self.store.root}; run `llama-rag index PATH "
                f"--index-dir {self.store.root}` first")
        started = time.perf_counter()
        query = self.embedder.encode([request.query])[0]
        if request.filters and (request.filters.source_prefix or request.filters.file_type):
            hits = self._filtered(version, query, request.k, request.filters)
        else:
            hits = version.search(query, request.k)
        return SearchResponse(version=version.version, hits=hits,
                              retrieve_ms=round((time.perf_counter() - started) * 1000, 2))

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]:
        """Cosine similarity of each sentence to each document (for citation attribution)."""
        if not sentences or not documents:
            return [[] for _ in sentences]
        vectors = self.embedder.encode(sentences + documents)
        return (vectors[: len(sentences)] @ vectors[len(sentences):].T).round(4).tolist()

    @staticmethod
    def _filtered(version: IndexVersion, query: np.ndarray, k: int,
                  filters: Filters) -> list[Hit]:
        """Exact search over the allowed rows (the memory-mapped vectors; no ANN recall loss)."""
        rows = allowed_rows(version, filters)
        if rows.size == 0:
            return []
        scores = np.asarray(version.vectors[rows]) @ np.asarray(query, dtype=np.float32)
        best = np.argsort(-scores)[:k]
        return version.hits([int(i) for i in rows[best]], [float(s) for s in scores[best]])


class Poller:
    """Calls ``core.refresh`` every ``interval`` seconds on a daemon thread (no event loop needed)."""

    def __init__(self, core: RetrieverCore, interval: float) -> None:
        self.core, self.interval = core, interval
        self.stopped = threading.Event()
        threading.Thread(target=self._run, name="index-poller", daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.core.refresh()
            except Exception:  # keep polling whatever one attempt hit
                log.exception("index refresh failed")


try:
    from ray import serve
except ImportError:  # pragma: no cover - unit tests without ray
    serve = None


if serve is not None:

    @serve.deployment(name="Retriever")
    class Retriever:
        """Serve deployment around RetrieverCore; a daemon thread polls CURRENT."""

        def __init__(self, settings: Settings) -> None:
            self.core = RetrieverCore(settings)
            self.poller = Poller(self.core, settings.qa.reload_interval_s)

        async def search(self, request: SearchRequest) -> SearchResponse:
            return await asyncio.to_thread(self.core.search, request)

        async def similarity(self, sentences: list[str], documents: list[str]
                             ) -> list[list[float]]:
            return await asyncio.to_thread(self.core.similarity, sentences, documents)

        def version(self) -> str | None:
            return self.core.version.version if self.core.version else None

        def check_health(self) -> None:
            pass

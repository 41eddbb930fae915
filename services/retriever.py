"""The retrieval deployment: embeds queries and searches the published indexes.

It serves the default collection and every named one, each at the version its
``CURRENT`` names, and polls those files on a daemon thread; when a new version is
published it loads it beside the old one and swaps one reference, so a query in
flight finishes on the version it started with and none fails. The search itself
(dense, lexical or hybrid, filters, MMR, reranking) is ``indexing.retrieval``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, Field, field_validator

from indexing.retrieval import CrossEncoderReranker, Mode, search_version
from indexing.store import Hit, IndexStore, IndexVersion
from llama_rag.config import DEFAULT_COLLECTION, COLLECTION_PATTERN, Settings
from llama_rag.pii import mask, mask_logs
from llama_rag.errors import IndexUnavailableError, NotFoundError

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


Collection = Annotated[str, Field(pattern=COLLECTION_PATTERN,
                                  description="A named index (default: the main one).")]


class SearchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    query: NonBlank = Field(..., min_length=1, max_length=4000)
    k: int = Field(5, ge=1, le=100)
    filters: Filters | None = None
    collection: Collection | None = None
    mode: Mode | None = Field(None, description="dense, lexical or hybrid (default: retrieval.mode).")
    mmr: bool | None = Field(None, description="Diversify the hits (default: retrieval.mmr).")


class SearchResponse(BaseModel):
    object: Literal["search.result"] = "search.result"
    version: str
    collection: str = DEFAULT_COLLECTION
    mode: Mode = "dense"
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


class IndexSummary(BaseModel):
    """What the served index holds (the web page's footer, `GET /v1/index`)."""

    version: str
    created_at: str
    documents: int
    chunks: int
    failed_files: int


class RetrieverCore:
    """The deployment's logic without Serve, so unit tests and the CLI can use it.

    Serves the default collection (``index.dir``) and every named collection under
    ``index.dir/collections/``; each switches to its newly published version alone.
    """

    def __init__(self, settings: Settings) -> None:
        from indexing.embedder import Embedder
        from llama_rag.models import apply_offline_policy, resolve_embedder

        apply_offline_policy(settings.models)
        ref = resolve_embedder(settings)
        self.store = IndexStore(settings.index.dir, settings.index.cache_dir)
        self.mask_pii = settings.privacy.mask_pii
        if self.mask_pii:
            mask_logs()
        self.retrieval = settings.retrieval
        self.embedder = Embedder(ref.name, ref.path, settings.models.embed_device)
        self.reranker = (CrossEncoderReranker(settings.retrieval.reranker)
                         if settings.retrieval.reranker else None)
        self.versions: dict[str, IndexVersion] = {}
        self.refresh()

    @property
    def version(self) -> IndexVersion | None:
        return self.versions.get(DEFAULT_COLLECTION)

    def stores(self) -> dict[str, IndexStore]:
        return {DEFAULT_COLLECTION: self.store,
                **{name: self.store.collection(name) for name in self.store.collections()}}

    def refresh(self) -> bool:
        """Load each collection's ``CURRENT`` version if it is not the loaded one;
        True if any swapped. A version that fails to load is logged and the old one
        kept serving."""
        swapped = dict(self.versions)
        for name, store in self.stores().items():
            current = store.current()
            loaded = swapped.get(name)
            if current is None or (loaded and loaded.version == current):
                continue
            try:
                new = store.open(current)
                new.check_embedder(self.embedder.info)
                new.lexical  # load (or build) it now, not on the first query
            except Exception as exc:  # a broken or foreign version must not stop serving
                log.error("cannot load index version %s of %s: %s", current, name, exc)
                continue
            swapped[name] = new
            log.info("serving %s version %s (%d chunks)", name, current, new.chunks.num_rows)
        if swapped == self.versions:
            return False
        self.versions = swapped  # one reference swap: queries in flight keep theirs
        return True

    def _loaded(self, collection: str | None) -> tuple[str, IndexVersion]:
        name = collection or DEFAULT_COLLECTION
        version = self.versions.get(name)
        if version is not None:
            return name, version
        store = self.store.collection(name)
        if name != DEFAULT_COLLECTION and not store.exists():
            raise NotFoundError(f"unknown collection {name!r}; served: "
                                f"{', '.join(sorted(self.versions)) or 'none'}", param="collection")
        hint = "" if name == DEFAULT_COLLECTION else f" --collection {name}"
        log.warning("collection %r: no index is published in %s", name, store)  # paths: log only
        raise IndexUnavailableError(
            f"no index is published for collection {name!r}; run `llama-rag index PATH{hint}` "
            "with this server's index directory first")

    def summary(self, collection: str | None = None) -> IndexSummary:
        _, version = self._loaded(collection)
        return IndexSummary(version=version.version, created_at=version.manifest.created_at,
                            documents=len(version.chunks.column("source").unique()),
                            chunks=version.chunks.num_rows,
                            failed_files=len(version.manifest.failed()))

    def search(self, request: SearchRequest) -> SearchResponse:
        name, version = self._loaded(request.collection)  # one version for the whole query
        started = time.perf_counter()
        query = self.embedder.encode([request.query])[0]
        filters = request.filters
        rows = (allowed_rows(version, filters)
                if filters and (filters.source_prefix or filters.file_type) else None)
        mode = request.mode or self.retrieval.mode
        hits = search_version(version, request.query, query, request.k, self.retrieval,
                              mode=mode, rows=rows, use_mmr=request.mmr, reranker=self.reranker)
        if self.mask_pii:  # also what the LLM is shown: it cannot repeat what it never saw
            hits = [h.model_copy(update={"text": mask(h.text), "title": mask(h.title)})
                    for h in hits]
        return SearchResponse(version=version.version, collection=name, mode=mode, hits=hits,
                              retrieve_ms=round((time.perf_counter() - started) * 1000, 2))

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]:
        """Cosine similarity of each sentence to each document (for citation attribution)."""
        if not sentences or not documents:
            return [[] for _ in sentences]
        vectors = self.embedder.encode(sentences + documents)
        return (vectors[: len(sentences)] @ vectors[len(sentences):].T).round(4).tolist()


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
            from llama_rag.metrics import retrieval_latency

            self.core = RetrieverCore(settings)
            self.poller = Poller(self.core, settings.qa.reload_interval_s)
            self.latency = retrieval_latency()

        async def search(self, request: SearchRequest) -> SearchResponse:
            found = await asyncio.to_thread(self.core.search, request)
            self.latency.observe(found.retrieve_ms, tags={"collection": found.collection,
                                                          "mode": found.mode})
            return found

        async def similarity(self, sentences: list[str], documents: list[str]
                             ) -> list[list[float]]:
            return await asyncio.to_thread(self.core.similarity, sentences, documents)

        def summary(self, collection: str | None = None) -> IndexSummary:
            return self.core.summary(collection)

        def version(self) -> str | None:
            return self.core.version.version if self.core.version else None

        def check_health(self) -> None:
            pass

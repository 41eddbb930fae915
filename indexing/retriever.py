"""The retriever core without Serve: the published versions of every collection, loaded,
searched and switched; the retrieval deployment (services.retriever), the CLI, the
answering path (qa.answerer, as its ``Retriever``) and the classification job's
``--context-index`` all use it.

It serves the default collection and every named one, each at the version its
``CURRENT`` names; ``Poller`` re-reads those files on a daemon thread, and a newly
published version is loaded beside the old one and swapped in one reference, so a
query in flight finishes on the version it started with. The search itself (dense,
lexical or hybrid, filters, MMR, reranking) is ``indexing.ranking``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol, Sequence

import numpy as np

from indexing.filters import visible_rows
from indexing.ranking import CrossEncoderReranker, search_version
from indexing.store import IndexStore, IndexVersion
from llama_rag.config import DEFAULT_COLLECTION, Settings
from llama_rag.errors import IndexUnavailableError, LlamaRagError, NotFoundError
from llama_rag.pii import mask, mask_logs
from llama_rag.protocol import Access, Filters, Hit, IndexSummary, SearchRequest, SearchResponse

log = logging.getLogger(__name__)


class QueryEmbedder(Protocol):
    """What the core needs of an embedder (indexing.embedder.Embedder, or a fake in tests)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def settings_embedder(settings: Settings) -> QueryEmbedder:
    """The embedder ``settings`` name (the one the index was built with)."""
    from indexing.embedder import Embedder, resolve_embedder
    from llama_rag.model_files import apply_offline_policy

    apply_offline_policy(settings.models)
    return Embedder(resolve_embedder(settings), settings.models.embed_device,
                    num_threads=settings.retrieval.embed_threads)


class RetrieverCore:
    """The deployment's logic without Serve, so unit tests and the CLI can use it.

    Serves the default collection (``index.dir``) and every named collection under
    ``index.dir/collections/``; each switches to its newly published version alone.
    """

    def __init__(self, settings: Settings, embedder: QueryEmbedder | None = None,
                 pinned: IndexVersion | None = None,
                 on_search: Callable[[SearchResponse], None] | None = None) -> None:
        """``pinned``: serve that version as the default collection and never switch (the
        index gate evaluates a version before it is published); ``on_search``: called
        with every search's response (the deployment's latency metric)."""
        self.on_search = on_search
        self.store = IndexStore(settings.index.dir, settings.index.cache_dir)
        self.mask_pii = settings.privacy.mask_pii
        if self.mask_pii:
            mask_logs()
        self.retrieval = settings.retrieval
        self.embedder = embedder if embedder is not None else settings_embedder(settings)
        self.reranker = (CrossEncoderReranker(settings.retrieval.reranker)
                         if settings.retrieval.reranker else None)
        self.versions: dict[str, IndexVersion] = {}
        self.unloadable: dict[str, LlamaRagError] = {}  # why a collection serves nothing
        if pinned is not None:
            pinned.check_embedder(self.embedder.info)
            self.versions = {DEFAULT_COLLECTION: pinned}
        else:
            self.refresh()

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
                if isinstance(exc, LlamaRagError):
                    self.unloadable[name] = exc
                continue
            self.unloadable.pop(name, None)
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
        if name in self.unloadable:  # e.g. built with another embedder: say so, not "none"
            raise self.unloadable[name]
        store = self.store.collection(name)
        if name != DEFAULT_COLLECTION and not store.exists():
            raise NotFoundError(f"unknown collection {name!r}; served: "
                                f"{', '.join(sorted(self.versions)) or 'none'}", param="collection")
        hint = "" if name == DEFAULT_COLLECTION else f" --collection {name}"
        log.warning("collection %r: no index is published in %s", name, store)  # paths: log only
        raise IndexUnavailableError(
            f"no index is published for collection {name!r}; run `llama-rag index PATH{hint}` "
            "with this server's index directory first")

    def scoped(self, access: Access | None) -> "RetrieverCore | ScopedRetriever":
        """This core as ``access`` may use it (the answerer's retriever for one request)."""
        return self if access is None or access.groups is None else ScopedRetriever(self, access)

    def summary(self, collection: str | None = None, access: Access | None = None
                ) -> IndexSummary:
        """Counts of what the caller may read (a forbidden document is not counted)."""
        _, version = self._loaded(collection)
        groups = access.groups if access is not None else None
        rows = version.groups.allowed(groups)
        sources = version.chunks.column("source")
        failed = [f for f in version.manifest.failed().values()
                  if version.groups.readable(f.groups or [], groups)] if groups is not None \
            else version.manifest.failed()
        return IndexSummary(version=version.version, created_at=version.manifest.created_at,
                            documents=len((sources if rows is None else sources.take(rows))
                                          .unique()),
                            chunks=version.chunks.num_rows if rows is None else len(rows),
                            failed_files=len(failed))

    def check_source(self, source: str, access: Access | None = None,
                     collection: str | None = None) -> None:
        """``NotFoundError`` unless the caller may read a chunk of ``source`` (/v1/files):
        a forbidden document is as absent as a missing one."""
        _, version = self._loaded(collection)
        rows = version.groups.allowed(access.groups if access is not None else None)
        sources = version.chunks.column("source").to_numpy(zero_copy_only=False)
        if not (sources == source if rows is None else sources[rows] == source).any():
            raise NotFoundError(f"no document {source!r}", param="source")

    def search(self, request: SearchRequest, access: Access | None = None) -> SearchResponse:
        name, version = self._loaded(request.collection)  # one version for the whole query
        started = time.perf_counter()
        query = self.embedder.encode([request.query])[0]
        rows = visible_rows(version, request.filters, access)
        mode = request.mode or self.retrieval.mode
        hits = search_version(version, request.query, query, request.k, self.retrieval,
                              mode=mode, rows=rows, use_mmr=request.mmr, reranker=self.reranker)
        if self.mask_pii:  # also what the LLM is shown: it cannot repeat what it never saw
            hits = [h.model_copy(update={"text": mask(h.text), "title": mask(h.title)})
                    for h in hits]
        found = SearchResponse(version=version.version, collection=name, mode=mode, hits=hits,
                               retrieve_ms=round((time.perf_counter() - started) * 1000, 2))
        if self.on_search is not None:
            self.on_search(found)
        return found

    def is_api_reference(self, collection: str | None = None,
                         access: Access | None = None) -> bool:
        """The collection's version holds API reference pages (indexing.api_entries) the
        caller may read."""
        version = self._loaded(collection)[1]
        if not version.api_reference or access is None or access.groups is None:
            return version.api_reference
        return bool(version.api_rows[version.groups.allowed(access.groups)].any())

    def entries(self, name: str, collection: str | None = None,
                filters: Filters | None = None, access: Access | None = None) -> list[Hit]:
        """The chunks holding the API entry for ``name`` (indexing.api_entries), score 1."""
        _, version = self._loaded(collection)
        sources = version.chunks.column("source")
        rows = []
        for row in version.symbols.rows(name):  # and the chunk after, which may hold the answer
            rows += [row] + ([row + 1] if row + 1 < len(sources)
                             and sources[row + 1] == sources[row] else [])
        visible = visible_rows(version, filters, access)
        if visible is not None:
            allowed = set(visible.tolist())
            rows = [r for r in rows if r in allowed]
        return self._hits(version, rows)

    def task_entries(self, pages: list[str], words: list[str], collection: str | None = None,
                     limit: int = 12, access: Access | None = None) -> list[Hit]:
        """Chunks of ``pages`` documenting entries named by ``words`` (and each one's
        successor), for how-to questions (qa.api_reference)."""
        _, version = self._loaded(collection)
        sources = version.chunks.column("source").to_pylist()
        wanted = set(pages)
        visible = visible_rows(version, None, access)
        readable = None if visible is None else set(visible.tolist())
        on_pages = {r for r, s in enumerate(sources)
                    if s in wanted and (readable is None or r in readable)}
        rows: list[int] = []
        for row in version.symbols.named(on_pages, words)[:limit]:
            rows += [r for r in (row, row + 1) if r in on_pages and r not in rows]
        return self._hits(version, rows)

    def _hits(self, version: IndexVersion, rows: list[int]) -> list[Hit]:
        hits = version.hits(rows, [1.0] * len(rows))
        if self.mask_pii:
            hits = [h.model_copy(update={"text": mask(h.text), "title": mask(h.title)})
                    for h in hits]
        return hits

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]:
        """Cosine similarity of each sentence to each document."""
        if not sentences or not documents:
            return [[] for _ in sentences]
        vectors = self.embedder.encode(sentences + documents)
        return (vectors[: len(sentences)] @ vectors[len(sentences):].T).round(4).tolist()

    def hit_similarity(self, sentences: list[str], hits: list[Hit],
                       collection: str | None = None) -> list[list[float]]:
        """Cosine similarity of each sentence to each hit, for citation attribution: the
        hits' vectors are the ones the index stored (only the sentences are embedded,
        on the cores the LLM shares); a hit the served version no longer holds is
        embedded from its text."""
        if not sentences or not hits:
            return [[] for _ in sentences]
        version = self.versions.get(collection or DEFAULT_COLLECTION)
        stored = version.stored_vectors([h.chunk_id for h in hits]) if version else \
            [None] * len(hits)
        missing = [i for i, v in enumerate(stored) if v is None]
        vectors = self.embedder.encode(sentences + [hits[i].text for i in missing])
        found = dict(zip(missing, vectors[len(sentences):]))
        documents = np.stack([v if v is not None else found[i] for i, v in enumerate(stored)])
        return (vectors[: len(sentences)] @ documents.T).round(4).tolist()


class ScopedRetriever:
    """A RetrieverCore limited to one caller's ``access``: what the answerer is given, so
    every lookup it makes (search, entries, the API profile's test) is limited too."""

    def __init__(self, core: RetrieverCore, access: Access) -> None:
        self.core, self.access = core, access

    def search(self, request: SearchRequest) -> SearchResponse:
        return self.core.search(request, self.access)

    def is_api_reference(self, collection: str | None = None) -> bool:
        return self.core.is_api_reference(collection, self.access)

    def entries(self, name: str, collection: str | None = None,
                filters: Filters | None = None) -> list[Hit]:
        return self.core.entries(name, collection, filters, self.access)

    def task_entries(self, pages: list[str], words: list[str], collection: str | None = None,
                     limit: int = 12) -> list[Hit]:
        return self.core.task_entries(pages, words, collection, limit, self.access)

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]:
        return self.core.similarity(sentences, documents)

    def hit_similarity(self, sentences: list[str], hits: list[Hit],
                       collection: str | None = None) -> list[list[float]]:
        return self.core.hit_similarity(sentences, hits, collection)


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

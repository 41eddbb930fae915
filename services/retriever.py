"""The retrieval deployment: the search core (indexing.search) behind Ray Serve.

One replica embeds queries and searches every collection at its published version;
a daemon thread polls ``CURRENT`` so a new version is served without a restart.
"""

from __future__ import annotations

import asyncio

from ray import serve

from indexing.search import Poller, RetrieverCore
from llama_rag.config import Settings
from llama_rag.protocol import Filters, Hit, IndexSummary, SearchRequest, SearchResponse


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

    async def hit_similarity(self, sentences: list[str], hits: list[Hit],
                             collection: str | None = None) -> list[list[float]]:
        return await asyncio.to_thread(self.core.hit_similarity, sentences, hits, collection)

    async def entries(self, name: str, collection: str | None = None,
                      filters: Filters | None = None) -> list[Hit]:
        return await asyncio.to_thread(self.core.entries, name, collection, filters)

    async def task_entries(self, pages: list[str], words: list[str],
                           collection: str | None = None) -> list[Hit]:
        return await asyncio.to_thread(self.core.task_entries, pages, words, collection)

    def collections(self) -> list[str]:
        """The collections served now (the default one included)."""
        return sorted(self.core.versions)

    def summary(self, collection: str | None = None) -> IndexSummary:
        return self.core.summary(collection)

    def version(self) -> str | None:
        return self.core.version.version if self.core.version else None

    def check_health(self) -> None:
        pass

"""The retrieval deployment: the retriever core (indexing.retriever) and the answering
path (qa.answerer) behind Ray Serve.

One replica embeds queries and searches every collection at its published version;
a daemon thread polls ``CURRENT`` so a new version is served without a restart. The
answerer runs here, next to the index, so one question costs the API one call
(``prepare``; and ``finish`` after the LLM for a generated answer), whatever lookups
the answer needs. A tuned passage scorer (``qa.passage_scorer``) is loaded at start.
"""

from __future__ import annotations

import asyncio

from ray import serve

from indexing.passage_scorer import load_scorer
from indexing.retriever import Poller, RetrieverCore
from llama_rag.config import AnswerMode, Settings
from llama_rag.protocol import Access, AskRequest, AskResponse, IndexSummary, SearchRequest, \
    SearchResponse, Usage
from qa.answerer import Answerer, Generation


@serve.deployment(name="Retriever")
class Retriever:
    """Serve deployment around RetrieverCore and the Answerer; a daemon thread polls CURRENT."""

    def __init__(self, settings: Settings) -> None:
        from llama_rag.telemetry import retrieval_latency

        latency = retrieval_latency()
        self.core = RetrieverCore(settings, on_search=lambda found: latency.observe(
            found.retrieve_ms, tags={"collection": found.collection, "mode": found.mode}))
        self.answerer = Answerer(self.core, settings, load_scorer(settings))
        self.poller = Poller(self.core, settings.qa.reload_interval_s)

    async def search(self, request: SearchRequest, access: Access | None = None
                     ) -> SearchResponse:
        return await asyncio.to_thread(self.core.search, request, access)

    async def prepare(self, body: AskRequest, mode: AnswerMode, access: Access | None = None
                      ) -> AskResponse | Generation:
        """The answer or its prompt, by an answerer that sees what ``access`` may read."""
        answerer = self.answerer if access is None else \
            Answerer(self.core.scoped(access), self.answerer.settings, self.answerer.scorer)
        return await asyncio.to_thread(answerer.prepare, body, mode)

    async def finish(self, text: str, generation: Generation, usage: Usage,
                     generate_ms: float) -> AskResponse:
        return await asyncio.to_thread(self.answerer.finish, text, generation, usage,
                                       generate_ms)

    def collections(self) -> list[str]:
        """The collections served now (the default one included)."""
        return sorted(self.core.versions)

    def summary(self, collection: str | None = None, access: Access | None = None
                ) -> IndexSummary:
        return self.core.summary(collection, access)

    def check_source(self, source: str, access: Access | None = None) -> None:
        self.core.check_source(source, access)

    def check_health(self) -> None:
        pass

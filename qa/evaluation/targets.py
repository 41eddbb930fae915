"""Where `llama-rag eval` sends its questions: a running server, or a local index.

Both answer through the one answering path: the server's /v1/ask, or qa.answerer on
the local index (no LLM there, so its answers are the extractive mode's).
"""

from __future__ import annotations

from typing import Callable

from llama_rag.protocol import Hit, SearchRequest, Turn
from qa.answerer import Answerer

def http_target(url: str, collection: str | None, max_tokens: int | None, answers: bool):
    """(mode -> search function, answer mode -> ask function, or None) against a server."""
    from llama_rag.client import Client

    client = Client(url, retries=10)  # a bulk caller: waits out 429/503 Retry-After

    def searcher(mode: str | None) -> Callable[[str], list[Hit]]:
        body = {"k": 5, "mode": mode, "collection": collection}
        return lambda q: [Hit.model_validate(h) for h in client.post(
            "/v1/search", {"query": q, **{k: v for k, v in body.items() if v}})["hits"]]

    def asker(answer_mode: str | None) -> Callable[..., dict]:
        extra = {"collection": collection, "max_tokens": max_tokens, "answer_mode": answer_mode}
        return lambda q, history=(): client.post("/v1/ask", {
            "question": q, "history": [t.model_dump() for t in history],
            **{k: v for k, v in extra.items() if v}})

    return searcher, (asker if answers else None)


def local_target(core, settings, scorer=None, collection: str | None = None):
    """The same against a local index (indexing.retriever.RetrieverCore): no server, no
    LLM, so answers are the extractive answer mode's, from qa.answerer as /v1/ask gives
    them (with the tuned passage ``scorer``, if one is given)."""
    answerer = Answerer(core, settings, scorer)

    def searcher(mode: str | None) -> Callable[[str], list[Hit]]:
        return lambda q: core.search(SearchRequest(query=q, k=5, mode=mode,
                                                   collection=collection)).hits

    def ask(question: str, history: list[Turn] = ()) -> dict:
        return answerer.ask(question, history, collection).model_dump()

    return searcher, ask

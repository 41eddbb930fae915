"""Retrieval-augmented classification: each row gets the top chunks of an index as context."""

from __future__ import annotations

from typing import Any

from llama_rag.config import Settings

CONTEXT_K = 2
CONTEXT_CHARS = 600


class Retrieve:
    """Ray Data actor: adds a ``context`` column (quoted, best chunks first)."""

    def __init__(self, settings: Settings, groups: frozenset[str] | None = None) -> None:
        from indexing.retriever import RetrieverCore
        from llama_rag.protocol import Access

        self.core = RetrieverCore(settings)
        self.access = Access(subject="classify", groups=groups)  # --context-groups

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from llama_rag.protocol import SearchRequest

        contexts = []
        for text in batch["text"]:
            hits = self.core.search(SearchRequest(query=str(text)[:2000], k=CONTEXT_K),
                                    self.access).hits
            contexts.append("\n---\n".join(f"[{h.source}] {' '.join(h.text.split())[:CONTEXT_CHARS]}"
                                           for h in hits))
        return {**batch, "context": contexts}

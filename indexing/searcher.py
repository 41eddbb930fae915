"""Query a published index: embed the query with the index's embedder, search FAISS."""

from __future__ import annotations

from pathlib import Path

from indexing.embedder import Embedder
from indexing.store import Hit, IndexStore
from llama_rag.models import ModelRef


class Searcher:
    """Loads the current version and the embedder once; ``search`` only queries."""

    def __init__(self, index_dir: Path | str, embedder: ModelRef, device: str = "auto") -> None:
        self.version = IndexStore(index_dir).open()
        self.embedder = Embedder(embedder.name, embedder.path, device)
        self.version.check_embedder(self.embedder.info)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not query.strip():
            raise ValueError("query must not be empty")
        return self.version.search(self.embedder.encode([query])[0], k)

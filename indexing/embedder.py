"""One sentence-transformers wrapper for indexing and querying: batched, normalized float32."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel


class EmbedderInfo(BaseModel):
    """What the manifest records so a reader can refuse a different embedder."""

    name: str
    dim: int


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; ``encode`` turns texts into unit-length float32 rows."""

    def __init__(self, name: str, path: str, device: str = "auto", batch_size: int = 64,
                 num_threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar per worker per load is noise in job logs

        if batch_size <= 0:
            raise ValueError(f"batch_size must be greater than 0, got {batch_size}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.model = SentenceTransformer(path, device=self.device,
                                         local_files_only=Path(path).exists())
        self.info = EmbedderInfo(name=name, dim=int(self.model.get_embedding_dimension()))
        self.count_tokens = _counter(self.model.tokenizer)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _counter(tokenizer) -> Callable[[str], int]:
    """Word pieces without special tokens: the unit chunk sizes are measured in."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, truncation=False,
                             verbose=False)["input_ids"])

    return count


def token_counter(path: str) -> Callable[[str], int]:
    """A tokenizer-only counter (no model weights), for chunking workers."""
    from transformers import AutoTokenizer

    return _counter(AutoTokenizer.from_pretrained(path))

"""One embedder for indexing and querying: batched, normalized float32 rows.

Three backends run the same model: sentence-transformers on torch, or a copy exported
once (indexing.embed_export) for ONNX Runtime or OpenVINO, which load without torch
(a query from the shell answers in about 2 s instead of 9); OpenVINO, the default,
encoded 2.2x torch's chunks/s here with the same vectors (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from indexing.embed_runtime import INFO_FILE, Backend, ExportedEncoder, ExportInfo, Quantization
from llama_rag.adapters import BaseModelRef, base_ref
from llama_rag.config import Settings
from llama_rag.errors import ModelSetupError
from llama_rag.model_files import ModelRef, embedder_model, is_ready, models_dir, publish_dir


class EmbedderRef(BaseModel):
    """The embedder to load: its name, where it is (the model, or its export), and how
    it runs (``resolve_embedder`` prepares it)."""

    name: str
    path: str
    backend: Backend = "torch"
    quantization: Quantization = "none"
    source: str = ""  # the sentence-transformers model the export was made from

    def info(self, dim: int) -> "EmbedderInfo":
        return EmbedderInfo(name=self.name, dim=dim, backend=self.backend,
                            quantization=self.quantization)

    def base(self) -> BaseModelRef:
        """What an embedding head records as its base: the model itself when the vectors
        are float32 (every backend makes the same ones), the int8 export otherwise."""
        model = base_ref(self.source or self.path, self.name)
        if self.quantization == "none":
            return model
        kind = self.info(0).vectors
        return BaseModelRef(name=kind, hash=hashlib.sha256(
            f"{model.hash}:{kind}".encode()).hexdigest()[:16])


class EmbedderInfo(BaseModel):
    """What the manifest records so a reader can refuse vectors of another embedder."""

    name: str
    dim: int
    backend: Backend = "torch"  # indexes written before backends existed were torch
    quantization: Quantization = "none"

    @property
    def vectors(self) -> str:
        """Which vectors it makes: float32 runs of one model agree to a cosine of
        0.9999 or more whatever the backend (bench/embed.py), so they are one kind; each
        int8 export is its own (0.983-0.999 to torch)."""
        if self.quantization == "none":
            return self.name
        return f"{self.name} ({self.backend} {self.quantization})"


def resolve_embedder(settings: Settings) -> EmbedderRef:
    """The embedder to load: the configured model and, for onnx/openvino, its export
    (made on first use)."""
    model = embedder_model(settings)
    backend = settings.models.embed_backend
    if backend == "torch":
        return EmbedderRef(name=model.name, path=model.path, source=model.path)
    quantization = settings.models.embed_quantization
    return EmbedderRef(name=model.name, path=str(prepare_export(model, backend, quantization,
                                                                settings)),
                       backend=backend, quantization=quantization, source=model.path)


def prepare_export(model: ModelRef, backend: Backend, quantization: Quantization,
                   settings: Settings) -> Path:
    """The model exported for ``backend`` (indexing.embed_export) in the models dir:
    made once (~15 s), then found; written under a temporary name and renamed, so a
    crash or a second process never leaves half an export. Delete it to export again."""
    digest = hashlib.sha1(model.path.encode()).hexdigest()[:8]
    dst = models_dir(settings) / "exports" / f"{model.name}-{digest}.{backend}-{quantization}"
    if is_ready(dst):
        return dst
    from indexing import embed_export

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dst.parent))
    try:
        embed_export.export(Path(model.path), tmp, backend, quantization)
    except ImportError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelSetupError(f"the {backend} backend is not installed ({exc}): "
                              "run `make setup`") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_dir(tmp, dst)


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; ``encode`` turns texts into unit-length float32 rows."""

    def __init__(self, ref: EmbedderRef, device: str = "auto", batch_size: int = 64,
                 num_threads: int | None = None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be greater than 0, got {batch_size}")
        self.batch_size = batch_size
        if ref.backend == "torch":
            self.device = pick_device(device)
            self._encoder = TorchEncoder(ref.path, self.device, batch_size, num_threads)
        else:
            self.device = "cpu"
            export = ExportInfo.model_validate_json((Path(ref.path) / INFO_FILE).read_text())
            self._encoder = ExportedEncoder(Path(ref.path), export, batch_size, num_threads)
        self.info = ref.info(self._encoder.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        return np.ascontiguousarray(self._encoder.encode(list(texts)), dtype=np.float32)


class TorchEncoder:
    """sentence-transformers itself (and the GPU path)."""

    def __init__(self, path: str, device: str, batch_size: int, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one bar per worker per load is noise in job logs
        if threads:
            torch.set_num_threads(threads)
        self.batch_size = batch_size
        self.model = SentenceTransformer(path, device=device, local_files_only=Path(path).exists())
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


def token_counter(path: str) -> Callable[[str], int]:
    """A tokenizer-only counter (no model weights), for chunking workers: word pieces
    without special tokens, the unit chunk sizes are measured in. Read from the model's
    ``tokenizer.json`` with ``tokenizers`` where it has one (the same counts as
    transformers' fast tokenizer; importing transformers pulls in torch and made each
    loader actor start seconds later); transformers' AutoTokenizer otherwise."""
    if (Path(path) / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        fast.no_truncation()
        fast.no_padding()
        return lambda text: len(fast.encode(text, add_special_tokens=False).ids)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, truncation=False,
                             verbose=False)["input_ids"])

    return count


def job_embedder(ref: EmbedderRef, settings: Settings) -> Embedder:
    """The embedder inside a batch job's actor or driver, with the threads Ray would
    otherwise pin to one (the job's reservation): ``ingest.embed_threads`` or every core."""
    import os

    return Embedder(ref, device=settings.models.embed_device,
                    batch_size=settings.ingest.encode_batch_size,
                    num_threads=settings.ingest.embed_threads or os.cpu_count())

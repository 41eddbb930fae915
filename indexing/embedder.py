"""One embedder for indexing and querying: batched, normalized float32 rows.

Three backends run the same model: sentence-transformers on torch, or a copy exported
once (indexing.embed_export) for ONNX Runtime or OpenVINO, which load without torch
(a query from the shell answers in about 2 s instead of 9); OpenVINO, the default,
encoded 2.2x torch's chunks/s here with the same vectors (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from indexing.embed_export import INFO_FILE, Backend, ExportInfo, Quantization
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


class ExportedEncoder:
    """An export run by ONNX Runtime or OpenVINO: tokenized by ``tokenizers`` (no torch),
    longest texts first in batches (as sentence-transformers does, so padding is small)."""

    def __init__(self, path: Path, info: ExportInfo, batch_size: int,
                 threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.info, self.batch_size, self.dim = info, batch_size, info.dim
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(info.max_seq_length)
        self.tokenizer.enable_padding(pad_id=_pad_id(path, self.tokenizer))
        model = str(path / info.model_file)
        self._run = (_onnx_session(model, threads) if info.backend == "onnx"
                     else _openvino_model(model, threads, info.quantization == "int8"))

    def encode(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in rows])
            columns = {"input_ids": [e.ids for e in encoded],
                       "attention_mask": [e.attention_mask for e in encoded],
                       "token_type_ids": [e.type_ids for e in encoded]}
            out[rows] = self._run({n: np.asarray(columns[n], dtype=np.int64)
                                   for n in self.info.inputs})
        # int8 outputs drift off unit length by ~1e-3; cosine search needs exactly 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _pad_id(path: Path, tokenizer) -> int:
    config = path / "tokenizer_config.json"
    pad = json.loads(config.read_text()).get("pad_token") if config.exists() else None
    if isinstance(pad, dict):
        pad = pad.get("content")
    found = tokenizer.token_to_id(pad) if isinstance(pad, str) else None
    return found if found is not None else 0


def _onnx_session(model: str, threads: int | None) -> Callable[[dict], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: one per core
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)[0]


def _openvino_model(model: str, threads: int | None, int8: bool) -> Callable[[dict], np.ndarray]:
    """LATENCY: one request at a time uses every thread (THROUGHPUT would split the cores
    into streams that a synchronous loop leaves idle). int8: the activations are
    quantized per 32 values at run time, so the int8 weights meet int8 kernels. The
    retriever encodes from several threads at once (``CompiledModel.__call__`` shares
    one request between them and mixed their batches up: found by bench/qa.py)."""
    ov = import_openvino()
    config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    if int8:
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = "32"
    compiled = ov.Core().compile_model(model, "CPU", config)
    local = threading.local()  # one infer request per thread: a request is not thread-safe

    def run(feed: dict) -> np.ndarray:
        if not hasattr(local, "request"):
            local.request = compiled.create_infer_request()
        return local.request.infer(feed)[0].copy()  # the request reuses its output buffer

    return run


def import_openvino():
    """``import openvino`` without its usage telemetry: importing it sends an event to
    Google Analytics (and writes ~/intel) unless the user opted out, and nothing here may
    reach the network by default. Both OpenVINO's converter and NNCF fall back to their
    no-op stubs when ``openvino_telemetry`` cannot be imported; this process only."""
    import sys

    if "openvino_telemetry" not in sys.modules or sys.modules["openvino_telemetry"] is None:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    import openvino

    return openvino


def token_counter(path: str) -> Callable[[str], int]:
    """A tokenizer-only counter (no model weights), for chunking workers: word pieces
    without special tokens, the unit chunk sizes are measured in."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, truncation=False,
                             verbose=False)["input_ids"])

    return count

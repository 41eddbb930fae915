"""Running an exported embedder: ONNX Runtime or OpenVINO, tokenized without torch.

The export itself (indexing.embed_export) and the ``Embedder`` every caller uses
(indexing.embedder) both run exports through ``ExportedEncoder``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel

Backend = Literal["torch", "onnx", "openvino"]
Quantization = Literal["none", "int8"]
INFO_FILE = "export.json"


class ExportInfo(BaseModel):
    """What an export folder holds; read back by the runtime (ExportedEncoder)."""

    source: str
    backend: Backend
    quantization: Quantization
    model_file: str
    inputs: list[str]
    dim: int
    max_seq_length: int
    min_cosine: float
    mean_cosine: float


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

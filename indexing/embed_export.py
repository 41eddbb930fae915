"""Export a sentence-transformers model once for ONNX Runtime or OpenVINO, int8 or not.

Why not optimum: its releases pin transformers 4.x, and vLLM here needs 5.x. The
whole sentence-transformers pipeline (transformer, pooling, normalize) is traced
into one graph, so the runtimes return the sentence vectors themselves. Every
export is checked against torch on fixed probe sentences before it is published:
its agreement (cosine) is kept in ``export.json`` and an export below
``MIN_AGREEMENT`` is refused rather than served.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from indexing.embed_runtime import INFO_FILE, Backend, ExportInfo, Quantization
from llama_rag.errors import ModelSetupError

MIN_AGREEMENT = 0.95  # cosine to torch; int8 exports measured 0.985-0.999 (min over probes)
# Varied sentences (prose, code, a heading, a list, non-English) the export is checked on.
PROBES = [
    "Return the bytes of the file name in the archive.",
    "How do I read a zip archive in Python?",
    "ZipFile.extractall(path=None, members=None, pwd=None)",
    "for line in open('data.csv'): total += float(line.split(',')[2])",
    "Changed in version 3.6: Calling open() on a closed ZipFile will raise a ValueError.",
    "Installation > Requirements > Python 3.10 or newer",
    "- apples\n- pears\n- a long list of fruit that goes on for a while",
    "La bibliothèque standard de Python est très étendue.",
    "The quick brown fox jumps over the lazy dog. " * 30,
    "?",
]


def export(source: Path, out: Path, backend: Backend, quantization: Quantization) -> ExportInfo:
    """Write ``backend``'s copy of the model at ``source`` into the empty folder ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer

    if backend == "torch":
        raise ValueError("torch runs the sentence-transformers model itself: nothing to export")
    st = SentenceTransformer(str(source), device="cpu", local_files_only=source.exists())
    inputs = [n for n in st.tokenizer.model_input_names
              if n in ("input_ids", "attention_mask", "token_type_ids")]
    st.tokenizer.save_pretrained(out)  # tokenizer.json: the runtimes tokenize without torch
    onnx_path = out / "model.onnx"
    _trace(st, inputs, onnx_path, torch)
    if backend == "onnx":
        model_file = _onnx_int8(onnx_path) if quantization == "int8" else onnx_path.name
    else:
        model_file = _openvino(onnx_path, quantization == "int8")
    info = ExportInfo(source=str(source), backend=backend, quantization=quantization,
                      model_file=model_file, inputs=inputs,
                      dim=int(st.get_embedding_dimension()),
                      max_seq_length=int(st.max_seq_length), min_cosine=0.0, mean_cosine=0.0)
    return _check_agreement(st, out, info)


def _trace(st, inputs: list[str], path: Path, torch) -> None:
    class Pipeline(torch.nn.Module):
        """Tokens in, the normalized sentence vector out (what ``encode`` returns)."""

        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            return self.st(dict(zip(inputs, tensors)))["sentence_embedding"]

    sample = st.tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
    # the tracer warns of shape checks that hold for every input (padding = mask length)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pipeline().eval(), tuple(sample[n] for n in inputs), str(path),
                          input_names=inputs, output_names=["sentence_embedding"],
                          dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)


def _onnx_int8(fp32: Path) -> str:
    """Dynamic int8 (weights per channel, 7-bit so AVX2's u8s8 products cannot
    saturate: plain int8 measured a minimum cosine of 0.87 to torch, this 0.985)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = fp32.with_name("model.int8.onnx")
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=True)
    fp32.unlink()
    return out.name


def _openvino(onnx_path: Path, int8: bool) -> str:
    """OpenVINO IR; int8: weights compressed by NNCF (no calibration data), activations
    quantized at run time (``DYNAMIC_QUANTIZATION_GROUP_SIZE``, indexing.embedder).

    The ONNX file is read by the runtime's ONNX frontend; telemetry stays off
    (indexing.embed_runtime.import_openvino)."""
    from indexing.embed_runtime import import_openvino

    ov = import_openvino()  # also keeps NNCF's telemetry off (it imports the same module)
    model = ov.Core().read_model(str(onnx_path))
    if int8:
        import nncf

        nncf.set_log_level(logging.ERROR)  # its per-layer tables are not for users
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(model, str(onnx_path.with_name("model.xml")), compress_to_fp16=False)
    onnx_path.unlink()
    return "model.xml"


def _check_agreement(st, out: Path, info: ExportInfo) -> ExportInfo:
    from indexing.embed_runtime import ExportedEncoder

    want = st.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
    got = ExportedEncoder(out, info, batch_size=4).encode(PROBES)
    cosine = (np.asarray(want) * got).sum(axis=1)
    info = info.model_copy(update={"min_cosine": round(float(cosine.min()), 5),
                                   "mean_cosine": round(float(cosine.mean()), 5)})
    if info.min_cosine < MIN_AGREEMENT:  # the caller removes the folder
        raise ModelSetupError(
            f"the {info.backend} {info.quantization} export of {info.source} disagrees with "
            f"torch (cosine {info.min_cosine:.3f} < {MIN_AGREEMENT}): use another "
            "models.embed_backend / models.embed_quantization")
    (out / INFO_FILE).write_text(info.model_dump_json(indent=2))
    return info

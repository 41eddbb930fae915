"""The exported-model encoder without a model: batching order, padding, normalization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexing.embed_runtime import ExportInfo
from indexing.embed_runtime import ExportedEncoder
from indexing.embedder import EmbedderInfo, EmbedderRef, resolve_embedder
from llama_rag.config import load_settings


def _word_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate("abcdefgh")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": "[PAD]"}))


def test_batches_longest_first_truncates_and_returns_rows_in_input_order(tmp_path, monkeypatch):
    _word_tokenizer(tmp_path)
    info = ExportInfo(source="s", backend="onnx", quantization="int8", model_file="m.onnx",
                      inputs=["input_ids", "attention_mask"], dim=3, max_seq_length=4,
                      min_cosine=1.0, mean_cosine=1.0)
    seen: list[dict] = []

    def runtime(feed):
        seen.append(feed)
        ids, mask = feed["input_ids"], feed["attention_mask"]
        # a vector that says which text it was: (number of real tokens, first id, 1)
        return np.stack([mask.sum(1), ids[:, 0], np.ones(len(ids))], axis=1) * 2.0

    monkeypatch.setattr("indexing.embed_runtime._onnx_session", lambda model, threads: runtime)
    enc = ExportedEncoder(tmp_path, info, batch_size=2)
    texts = ["a", "b c d e f g", "c d", "h"]
    out = enc.encode(texts)
    assert [f["input_ids"].shape for f in seen] == [(2, 4), (2, 1)]  # long ones padded together
    assert set(seen[0]) == {"input_ids", "attention_mask"}  # only the inputs the graph has
    assert seen[0]["input_ids"].dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    # rows come back in the input order: "b c d ..." was truncated to 4 tokens
    counts = out[:, 0] / out[:, 2]
    np.testing.assert_allclose(counts, [1, 4, 2, 1])
    assert out[0, 1] / out[0, 2] == pytest.approx(2) and out[3, 1] / out[3, 2] == pytest.approx(9)


def test_vectors_kind_joins_float32_backends_and_splits_int8_ones():
    torch = EmbedderInfo(name="m", dim=4)
    assert torch.vectors == EmbedderInfo(name="m", dim=4, backend="openvino").vectors == "m"
    int8 = EmbedderInfo(name="m", dim=4, backend="onnx", quantization="int8")
    assert int8.vectors == "m (onnx int8)" != EmbedderInfo(
        name="m", dim=4, backend="openvino", quantization="int8").vectors
    # a manifest written before backends existed reads as torch float32
    assert EmbedderInfo.model_validate({"name": "m", "dim": 4}).vectors == "m"


def test_an_export_is_made_once_published_whole_and_named_by_backend(tmp_path, monkeypatch):
    import indexing.embed_export as embed_export

    local = tmp_path / "my-embedder"
    local.mkdir()
    calls = []

    def fake_export(source, out, backend, quantization):
        calls.append((source, backend, quantization))
        if len(calls) == 2:
            (out / "partial").write_text("half")
            raise RuntimeError("the exporter crashed")
        (out / "export.json").write_text("{}")

    monkeypatch.setattr(embed_export, "export", fake_export)
    settings = load_settings(None, {"home": str(tmp_path / "home"), "models.embedder": str(local)})
    ref = resolve_embedder(settings)  # defaults: openvino, float32
    assert (ref.name, ref.backend, ref.quantization) == ("my-embedder", "openvino", "none")
    assert ref.path.endswith(".openvino-none") and (Path(ref.path) / "export.json").exists()
    assert resolve_embedder(settings) == ref and len(calls) == 1  # found, not redone
    onnx = settings.model_copy(update={"models": settings.models.model_copy(
        update={"embed_backend": "onnx", "embed_quantization": "int8"})})
    with pytest.raises(RuntimeError, match="crashed"):
        resolve_embedder(onnx)
    # nothing half-written is left where the next run would find it
    assert [p.name for p in Path(ref.path).parent.iterdir()] == [Path(ref.path).name]
    torch = settings.model_copy(update={"models": settings.models.model_copy(
        update={"embed_backend": "torch", "embed_quantization": "int8"})})
    # torch runs the model itself (always float32): nothing exported, nothing named int8
    assert resolve_embedder(torch) == EmbedderRef(name="my-embedder", path=str(local),
                                                  source=str(local))


def test_a_head_base_is_the_model_for_float32_vectors_and_the_export_for_int8(tmp_path):
    """A head trained on torch vectors serves with OpenVINO float32 (same vectors), not
    with an int8 export (other vectors)."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "weights").write_bytes(b"w")
    export = tmp_path / "m.openvino-int8"
    export.mkdir()
    (export / "model.bin").write_bytes(b"q")
    torch = EmbedderRef(name="m", path=str(model), source=str(model))
    fp32 = EmbedderRef(name="m", path=str(tmp_path), backend="openvino", source=str(model))
    int8 = EmbedderRef(name="m", path=str(export), backend="openvino", quantization="int8",
                       source=str(model))
    assert torch.base() == fp32.base()
    assert int8.base().hash != torch.base().hash and "int8" in int8.base().name

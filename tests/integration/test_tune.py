"""`llama-rag tune` on the session's real index: pairs from the pages' structure, a real
cross-encoder trained as a Ray task on the session cluster, the gate on held-out
documents; what it publishes answers through qa.answerer."""

from __future__ import annotations

import json

import pytest

from tests.cluster import llama_rag

pytestmark = pytest.mark.integration
SMALL = ("--max-pairs", "60", "--max-held-out", "20", "--epochs", "1")


def test_tune_publishes_only_through_the_gate_and_answers_name_the_scorer(
        ray_cluster, qa_index, tmp_path):
    from indexing.passage_scorer import load_scorer
    from indexing.retriever import RetrieverCore
    from llama_rag.adapters import AdapterStore
    from llama_rag.config import load_settings
    from qa.answerer import Answerer

    registry = tmp_path / "adapters"
    env = {"LLAMA_RAG_ADAPTERS__DIR": str(registry)}
    settings = load_settings(None, {"index.dir": str(qa_index), "adapters.dir": str(registry)})
    store = AdapterStore.of(settings.adapters)

    refused = llama_rag(ray_cluster, "tune", "--index-dir", str(qa_index), "--name", "answers",
                        *SMALL, "--min-gain", "1.0", env=env, check=False)
    assert refused.returncode == 5, refused.stderr[-2000:]
    assert "gate refused passage scorer answers" in refused.stderr
    assert "held-out documents' questions" in refused.stderr and "CURRENT stays unset" in refused.stderr
    assert store.current("answers") is None  # nothing published, nothing half-written
    assert not registry.exists() or not any(registry.rglob("*.safetensors"))

    out = llama_rag(ray_cluster, "tune", "--index-dir", str(qa_index), "--name", "answers",
                    *SMALL, "--json", env=env, check=False)
    if out.returncode == 5:  # the tuned scorer did not beat the untuned engine: kept out
        assert "gate refused" in out.stderr and store.current("answers") is None
        return
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["published"] and summary["tuned"]["key_fact"] > summary["untuned"]["key_fact"]
    manifest = store.manifest("answers")
    assert manifest.method == "cross-encoder" and manifest.version == summary["version"]
    assert manifest.metrics["tuned"]["key_fact"] == summary["tuned"]["key_fact"]
    scorer = load_scorer(settings, "answers")
    answer = Answerer(RetrieverCore(settings), settings, scorer).ask(
        "How do I read the bytes of one member of a zip archive?")
    assert answer.answerable and answer.passage_scorer == f"answers@{manifest.version}"

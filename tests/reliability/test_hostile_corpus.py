"""Indexing a hostile corpus with the real CLI on the session cluster completes, lists
every bad file with its reason, indexes the good ones and nothing from outside."""

from __future__ import annotations

import json
import time

import pytest

from indexing.store import IndexStore
from tests.cluster import llama_rag
from tests.helpers import remove_deep_folders, write_hostile_corpus

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def test_hostile_corpus_is_indexed_with_every_bad_file_listed(ray_cluster, tmp_path, record):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    try:
        expected = write_hostile_corpus(corpus, outside)
        started = time.perf_counter()
        out = llama_rag(ray_cluster, "index", str(corpus), "--index-dir", str(tmp_path / "index"),
                        "--json", "--no-progress", timeout=600)
        seconds = time.perf_counter() - started
    finally:
        remove_deep_folders(corpus)
    summary = json.loads(out.stdout)
    version = IndexStore(tmp_path / "index").open()
    errors = {e["source"]: e["error"] for e in map(
        json.loads, (version.path / "errors.jsonl").read_text().splitlines())}
    assert set(errors) == set(expected)
    for source, word in expected.items():
        assert word in errors[source], (source, errors[source])
    sources = set(version.chunks.column("source").to_pylist())
    assert sources == {"good/ok.md", "/".join(["d"] * 1200 + ["deep.md"])}
    assert not any("secret outside" in t for t in version.chunks.column("text").to_pylist())
    assert summary["failed"] == len(expected) and summary["published"]
    record("hostile corpus", files=len(expected) + 2, listed_bad=len(errors),
           indexed=len(sources), seconds=round(seconds, 1))

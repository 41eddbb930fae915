import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from indexing import faiss_index
from indexing.embedder import EmbedderInfo
from indexing.store import CHUNK_SCHEMA, IndexStore, Manifest
from llama_rag.config import IndexSettings
from llama_rag.errors import EmbedderMismatchError, IndexLockedError, InvalidInputError, NotFoundError
from tests.helpers import hash_vectors


def _rows(texts):
    return pa.Table.from_pylist([
        dict(id=f"c{i}", doc_id="d", source=f"s{i % 3}.txt", title="T", heading=["H"], text=t,
             start=0, end=len(t), index=i, metadata="{}") for i, t in enumerate(texts)],
        schema=CHUNK_SCHEMA)


def _nearest(version, query, k: int):
    return version.hits(*version.nearest(query, k))


def _publish(store: IndexStore, texts, settings=None):
    manifest = Manifest(embedder=EmbedderInfo(name="fake", dim=16), chunking={})
    settings = settings or IndexSettings()
    with store.lock():
        vid = store.stage(_rows(texts), hash_vectors(texts), manifest,
                          [{"source": "bad.bin", "error": "binary file"}], settings)
        store.promote(vid, settings)
        return vid


def test_publish_then_open_and_search(tmp_path: Path):
    store = IndexStore(tmp_path / "idx")
    texts = [f"text number {i}" for i in range(20)]
    vid = _publish(store, texts)
    assert store.current() == vid
    version = store.open()
    hits = _nearest(version, hash_vectors(["text number 7"])[0], 3)
    assert hits[0].text == "text number 7" and hits[0].rank == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    errors = (version.path / "errors.jsonl").read_text().splitlines()
    assert json.loads(errors[0]) == {"source": "bad.bin", "error": "binary file"}
    assert version.manifest.index.kind == "flat"


def test_crash_before_pointer_switch_keeps_previous_version(tmp_path: Path, monkeypatch):
    store = IndexStore(tmp_path / "idx")
    first = _publish(store, ["alpha", "beta"])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _publish(store, ["gamma", "delta"])
    monkeypatch.undo()
    assert store.current() == first
    assert [h.text for h in _nearest(store.open(), hash_vectors(["alpha"])[0], 1)] == ["alpha"]


def test_killed_writer_leftovers_are_cleaned_by_next_writer(tmp_path: Path):
    store = IndexStore(tmp_path / "idx")
    _publish(store, ["alpha"])
    stale = store.versions / ".tmp-20200101T000000-dead00"
    stale.mkdir()
    (stale / "index.faiss").write_bytes(b"half")
    _publish(store, ["beta"])
    assert not stale.exists()


def test_second_writer_fails_fast_with_lock_message(tmp_path: Path):
    store = IndexStore(tmp_path / "idx")
    with store.lock():
        with pytest.raises(IndexLockedError, match="locked by another indexer \\(pid"):
            with IndexStore(tmp_path / "idx").lock():
                pass
    with store.lock():  # released again
        pass


def test_old_versions_are_pruned(tmp_path: Path):
    store = IndexStore(tmp_path / "idx")
    ids = [_publish(store, [f"v{i}"], IndexSettings(keep_versions=2)) for i in range(4)]
    kept = sorted(p.name for p in store.versions.iterdir())
    assert kept == sorted(ids[-2:])


def test_open_without_index_and_embedder_mismatch(tmp_path: Path):
    with pytest.raises(NotFoundError, match="no published index"):
        IndexStore(tmp_path / "none").open()
    store = IndexStore(tmp_path / "idx")
    _publish(store, ["alpha"])
    version = store.open()
    version.check_embedder(EmbedderInfo(name="fake", dim=16))
    with pytest.raises(EmbedderMismatchError, match="built with embedder fake"):
        version.check_embedder(EmbedderInfo(name="other-model", dim=768))
    # float32 backends make the same vectors (bench/embed.py: cosine >= 0.9999 to torch)
    version.check_embedder(EmbedderInfo(name="fake", dim=16, backend="onnx"))
    version.check_embedder(EmbedderInfo(name="fake", dim=16, backend="openvino"))
    # an int8 export is another function: refused, and the message says how to match
    with pytest.raises(EmbedderMismatchError, match="embed_backend to 'torch' and "
                       "models.embed_quantization to 'none'"):
        version.check_embedder(EmbedderInfo(name="fake", dim=16, backend="openvino",
                                            quantization="int8"))


def test_a_uri_root_is_written_whole_then_named_and_read_by_another_node(tmp_path: Path):
    bucket = tmp_path / "bucket" / "idx"
    writer = IndexStore(bucket.as_uri(), cache_dir=tmp_path / "writer-cache")
    vid = _publish(writer, ["alpha", "beta", "gamma"])
    assert (bucket / "CURRENT").read_text().strip() == vid
    assert {p.name for p in (bucket / "versions" / vid).iterdir()} >= {
        "index.faiss", "chunks.parquet", "vectors.npy", "manifest.json", "errors.jsonl", "lexical"}
    assert str(writer) == bucket.as_uri() and writer.root.is_relative_to(tmp_path / "writer-cache")
    reader = IndexStore(bucket.as_uri(), cache_dir=tmp_path / "reader-cache")  # another node
    assert reader.current() == vid and reader.previous_manifest().version == vid
    version = reader.open()
    assert version.path.is_relative_to(tmp_path / "reader-cache")
    assert [h.text for h in _nearest(version, hash_vectors(["beta"])[0], 1)] == ["beta"]
    assert version.lexical.scores("gamma", 3).argmax() == 2


def test_a_failed_upload_leaves_the_uri_roots_current_version(tmp_path: Path, monkeypatch):
    from llama_rag.location import RemoteRoot

    store = IndexStore((tmp_path / "bucket").as_uri(), cache_dir=tmp_path / "cache")
    first = _publish(store, ["alpha"])

    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(RemoteRoot, "upload", broken)
    with pytest.raises(OSError, match="connection reset"):
        _publish(store, ["beta"])
    monkeypatch.undo()
    assert store.current() == first
    fresh = IndexStore((tmp_path / "bucket").as_uri(), cache_dir=tmp_path / "other")
    assert fresh.open().chunks.column("text").to_pylist() == ["alpha"]


def test_uri_roots_prune_remote_versions_and_list_collections(tmp_path: Path):
    bucket = tmp_path / "bucket"
    store = IndexStore(bucket.as_uri(), cache_dir=tmp_path / "cache")
    ids = [_publish(store, [f"v{i}"], IndexSettings(keep_versions=2)) for i in range(3)]
    assert sorted(p.name for p in (bucket / "versions").iterdir()) == sorted(ids[-2:])
    assert store.collections() == []
    _publish(store.collection("faq"), ["question"])
    assert store.collections() == ["faq"]
    assert store.collection("faq").exists() and not store.collection("nope").exists()
    with pytest.raises(NotFoundError, match="version nope not found"):
        store.open("nope")


def test_index_dir_keeps_a_uri_whole_and_paths_as_given():
    from llama_rag.location import collection_dir

    assert IndexSettings(dir="s3://bucket/idx").dir == "s3://bucket/idx"
    assert IndexSettings(dir=Path("indexes/x")).dir == "indexes/x"
    assert collection_dir("gs://b/idx/", "faq") == "gs://b/idx/collections/faq"
    assert collection_dir(Path("idx"), "faq") == Path("idx/collections/faq")
    with pytest.raises(ValueError, match="must not be empty"):
        IndexSettings(dir=" ")


@pytest.mark.parametrize("kind,factory", [("flat", "Flat"), ("hnsw", "HNSW32,Flat"),
                                          ("ivfpq", "IVF")])
def test_factory_kinds_find_exact_neighbours(kind, factory):
    import faiss

    faiss.omp_set_num_threads(1)  # OpenMP spinning on a busy 2-core box costs more than it gives
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = faiss_index.build(vectors, IndexSettings(kind=kind, pq_m=4))
    assert info.factory.startswith(factory)
    scores, ids = faiss_index.search(index, info, vectors, vectors[:50], 3)
    assert np.array_equal(ids[:, 0], np.arange(50))  # every vector finds itself first
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)  # exact scores, also after PQ re-scoring
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_pq_refine_zero_returns_coarse_scores():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = faiss_index.build(vectors, IndexSettings(kind="ivfpq", pq_m=4, pq_refine=0))
    assert info.refine == 0
    scores, _ = faiss_index.search(index, info, vectors, vectors[:20], 1)
    assert not np.allclose(scores[:, 0], 1.0, atol=1e-3)


def test_auto_switches_to_hnsw_above_flat_max():
    assert faiss_index.describe(IndexSettings(flat_max=100), 100, 8).kind == "flat"
    assert faiss_index.describe(IndexSettings(flat_max=100), 101, 8).kind == "hnsw"


def test_ivfpq_parameters_are_checked():
    with pytest.raises(InvalidInputError, match="must divide"):
        faiss_index.describe(IndexSettings(kind="ivfpq", pq_m=7), 10_000, 384)
    with pytest.raises(InvalidInputError, match="at least 256 vectors"):
        faiss_index.describe(IndexSettings(kind="ivfpq"), 100, 384)

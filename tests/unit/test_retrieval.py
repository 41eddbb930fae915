"""Fusion, MMR, BM25 and the retrieval modes over a small real version (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from indexing.embedder import EmbedderInfo
from indexing.fusion import mmr, rrf, top_rows
from indexing.lexical import LexicalIndex
from indexing.ranking import search_version
from indexing.store import CHUNK_SCHEMA, IndexStore, Manifest
from llama_rag.config import IndexSettings, RetrievalSettings
from tests.helpers import hash_vectors
from tests.unit.test_store import _publish

TEXTS = ["zlib.crc32 computes a CRC-32 checksum of data",
         "ZipFile reads and writes ZIP archives",
         "shutil.copytree copies a tree; dirs_exist_ok allows an existing target",
         "json.dumps serialises an object to a JSON string",
         "tarfile reads tar archives, compressed or not"]


def test_rrf_rewards_rows_both_rankings_agree_on():
    fused = rrf([[1, 2, 3], [2, 4, 1]], k=60)
    assert [row for row, _ in fused][:2] == [2, 1]  # in both lists, high in both
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert {row for row, _ in fused} == {1, 2, 3, 4}
    tie = rrf([[7, 8], [8, 7]], k=30, weights=[1.0, 1.2])
    assert tie[0][0] == 8  # the heavier ranking breaks the tie


def test_top_rows_respects_allowed_rows_and_positive_only():
    scores = np.array([0.0, 5.0, 1.0, 3.0], dtype=np.float32)
    assert top_rows(scores, 2) == [1, 3]
    assert top_rows(scores, 5, rows=np.array([0, 2])) == [2, 0]
    assert top_rows(scores, 5, rows=np.array([0, 2]), positive_only=True) == [2]
    assert top_rows(scores, 0) == []


def test_mmr_skips_a_near_duplicate():
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    relevance = np.array([1.0, 0.95, 0.6])
    assert mmr([10, 11, 12], relevance, vectors, 2, lam=1.0) == [10, 11]  # relevance only
    assert mmr([10, 11, 12], relevance, vectors, 2, lam=0.5) == [10, 12]  # diversified


def test_bm25_finds_an_exact_identifier(tmp_path: Path):
    lex = LexicalIndex.build(TEXTS)
    lex.save(tmp_path)
    scores = LexicalIndex.load(tmp_path).scores("what does crc32 return?", len(TEXTS))
    assert int(np.argmax(scores)) == 0 and scores[1:].max() == 0
    assert LexicalIndex.load(tmp_path).scores("nothing matches", len(TEXTS)).max() == 0


@pytest.fixture
def version(tmp_path: Path):
    store = IndexStore(tmp_path / "idx")
    _publish(store, TEXTS)
    return store.open()


def test_publish_writes_the_lexical_index_with_the_version(version):
    assert (version.path / "lexical").is_dir()
    assert version.lexical.scores("dirs_exist_ok", len(TEXTS)).argmax() == 2


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_applies_filters_and_reports_cosine_scores(version, mode):
    query = "dirs_exist_ok"
    vector = hash_vectors([query])[0]
    rows = np.array([1, 2, 4])
    hits = search_version(version, query, vector, 3, RetrievalSettings(), mode=mode, rows=rows)
    texts = [h.text for h in hits]
    assert all(t in (TEXTS[1], TEXTS[2], TEXTS[4]) for t in texts)
    for h in hits:  # score is always the cosine similarity, whatever ranked the hit
        row = TEXTS.index(h.text)
        assert h.score == pytest.approx(float(version.vectors[row] @ vector), abs=1e-5)
    if mode != "dense":
        assert texts[0] == TEXTS[2]


def test_lexical_mode_returns_only_rows_that_match_a_term(version):
    hits = search_version(version, "crc32", hash_vectors(["crc32"])[0], 5,
                          RetrievalSettings(), mode="lexical")
    assert [h.text for h in hits] == [TEXTS[0]]


def test_a_reranker_reorders_the_candidates(version):
    class Longest:
        def scores(self, query, texts):
            return [len(t) for t in texts]

    hits = search_version(version, "archives", hash_vectors(["archives"])[0], 2,
                          RetrievalSettings(), mode="lexical", reranker=Longest())
    assert [h.text for h in hits] == sorted([TEXTS[1], TEXTS[4]], key=len, reverse=True)


@pytest.mark.parametrize("query", ["the", "?!", "and of the", "   .  "])
def test_a_query_of_only_stopwords_or_punctuation_scores_zero_not_an_error(query):
    """Found by schemathesis: bm25s raised IndexError on an empty token list (a 500)."""
    from indexing.lexical import LexicalIndex

    index = LexicalIndex.build(["zip archives", "csv files"])
    assert index.scores(query, 2).tolist() == [0.0, 0.0]


def _two_documents(tmp_path: Path):
    """Doc A: an opening about something else, then a chunk fairly like the query (e0);
    doc B: an opening like the query, then a chunk a little less like it than A's."""
    def unit(*pairs):
        v = np.zeros(16, dtype=np.float32)
        for axis, value in pairs:
            v[axis] = value
        return v / np.linalg.norm(v)

    layout = [("a", 0, unit((1, 1))), ("a", 1, unit((0, 0.6), (2, 0.8))),
              ("b", 0, unit((0, 0.7), (3, 0.714))), ("b", 1, unit((0, 0.5), (4, 0.866)))]
    rows = pa.Table.from_pylist([
        dict(id=f"c{i}", doc_id=doc, source=f"{doc}.txt", title=doc, heading=[], text=f"{doc}{k}",
             start=0, end=2, index=k, metadata="{}") for i, (doc, k, _) in enumerate(layout)],
        schema=CHUNK_SCHEMA)
    store = IndexStore(tmp_path / "two")
    with store.lock():
        vid = store.stage(rows, np.stack([v for *_, v in layout]),
                          Manifest(embedder=EmbedderInfo(name="fake", dim=16), chunking={}),
                          [], IndexSettings())
        store.promote(vid, IndexSettings())
    return store.open(), unit((0, 1))


def test_a_chunk_inherits_a_share_of_its_document_openings_likeness(tmp_path: Path):
    version, query = _two_documents(tmp_path)
    assert version.openings.tolist() == [0, 0, 2, 2]

    def order(weight, rows=None):
        settings = RetrievalSettings(document_weight=weight)
        return [h.text for h in search_version(version, "q", query, 3, settings, mode="dense",
                                               rows=rows)]

    assert order(0.0) == ["b0", "a1", "b1"]
    assert order(0.3) == ["b0", "b1", "a1"]  # 0.5 + 0.3 * 0.7 beats 0.6 + 0.3 * 0
    assert order(0.3, rows=np.array([1, 2, 3])) == ["b0", "b1", "a1"]
    # without B's opening among the caller's rows it lends nothing: 0.6 beats 0.5
    assert order(0.3, rows=np.array([1, 3])) == ["a1", "b1"]
    hits = search_version(version, "q", query, 1, RetrievalSettings(), mode="dense",
                          rows=np.array([3]))
    assert hits[0].score == pytest.approx(0.5, abs=1e-3)  # still the chunk's own cosine

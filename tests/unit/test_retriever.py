"""The retriever without Serve: filters, the empty-index error, switching to a new version."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexing.embedder import EmbedderInfo
from llama_rag.config import load_settings
from llama_rag.errors import IndexUnavailableError
from indexing.retriever import Poller, RetrieverCore
from llama_rag.protocol import Filters, SearchRequest
from tests.helpers import hash_vectors
from tests.unit.test_store import _publish


class FakeEmbedder:
    """hash_vectors as an embedder, named as the store helper's manifest says."""

    def __init__(self) -> None:
        self.info = EmbedderInfo(name="fake", dim=16)

    def encode(self, texts):
        return hash_vectors(texts)


@pytest.fixture(params=["path", "uri"])
def core(request, tmp_path: Path) -> RetrieverCore:
    """Every retriever test runs on a local folder and on a URI root (shared storage)."""
    where = tmp_path / "index"
    location = where.as_uri() if request.param == "uri" else where
    settings = load_settings(None, {"index.dir": location, "index.cache_dir": tmp_path / "cache"})
    return RetrieverCore(settings, embedder=FakeEmbedder())


def test_no_published_index_is_a_clear_503(core):
    with pytest.raises(IndexUnavailableError, match="run `llama-rag index") as err:
        core.search(SearchRequest(query="alpha"))
    # clients see this message: the server's index location stays in its log
    assert str(core.store).split("://")[-1] not in err.value.message


def test_filters_search_exactly_over_the_allowed_rows(core):
    _publish(core.store, ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    core.refresh()
    hits = core.search(SearchRequest(query="alpha", k=3)).hits
    assert hits[0].text == "alpha" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    only = core.search(SearchRequest(query="alpha", k=5, filters=Filters(source_prefix="s1"))).hits
    assert {h.source for h in only} == {"s1.txt"} and len(only) == 2
    assert core.search(SearchRequest(query="alpha", filters=Filters(file_type=["pdf"]))).hits == []


def test_a_new_version_is_picked_up_by_the_poller(core):
    _publish(core.store, ["alpha"])
    poller = Poller(core, interval=0.05)
    try:
        deadline = time.time() + 5
        while not core.versions and time.time() < deadline:
            time.sleep(0.05)
        first = core.search(SearchRequest(query="omega")).version
        _publish(core.store, ["alpha", "omega"])
        while core.search(SearchRequest(query="omega")).version == first:
            assert time.time() < deadline, "the new version was not picked up"
            time.sleep(0.05)
        assert core.search(SearchRequest(query="omega", k=1)).hits[0].text == "omega"
    finally:
        poller.stopped.set()


def test_summary_names_the_version_and_counts_documents_and_chunks(core):
    with pytest.raises(IndexUnavailableError):
        core.summary()
    vid = _publish(core.store, ["alpha", "beta", "gamma"])
    core.refresh()
    summary = core.summary()
    assert summary.version == vid and summary.chunks == 3
    assert summary.documents == len(set(core.versions["default"].chunks.column("source").to_pylist()))


def test_collections_are_served_side_by_side_and_stay_isolated(core):
    from llama_rag.errors import NotFoundError

    _publish(core.store, ["alpha", "beta"])
    _publish(core.store.collection("other"), ["omega", "sigma"])
    core.refresh()
    main = core.search(SearchRequest(query="omega", k=5))
    other = core.search(SearchRequest(query="omega", k=5, collection="other"))
    assert {h.text for h in main.hits} == {"alpha", "beta"} and main.collection == "default"
    assert {h.text for h in other.hits} == {"omega", "sigma"} and other.collection == "other"
    assert core.summary("other").chunks == 2
    with pytest.raises(NotFoundError, match="unknown collection 'nope'"):
        core.search(SearchRequest(query="omega", collection="nope"))


def test_collection_names_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        SearchRequest(query="x", collection="../etc")


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return super().encode(texts)


def test_attribution_uses_the_stored_vectors_and_embeds_only_the_sentences(tmp_path: Path):
    settings = load_settings(None, {"index.dir": tmp_path / "index"})
    core = RetrieverCore(settings, embedder=CountingEmbedder())
    _publish(core.store, ["alpha", "beta", "gamma"])
    core.refresh()
    hits = core.search(SearchRequest(query="beta", k=2)).hits
    gone = hits[1].model_copy(update={"chunk_id": "not-in-this-version", "text": "gamma"})
    core.embedder.seen.clear()
    sims = core.hit_similarity(["beta", "gamma"], [hits[0], gone])
    # the stored hit is not embedded again; the one the version lacks is, from its text
    assert core.embedder.seen == ["beta", "gamma", "gamma"]
    assert sims[0][0] == pytest.approx(1.0, abs=1e-3) and sims[1][1] == pytest.approx(1.0, abs=1e-3)
    assert sims[0][1] < 0.99


def test_an_index_of_another_embedder_is_refused_by_name_not_reported_missing(tmp_path: Path):
    """The CLI and the server say which embedder built it, not 'no index is published'."""
    from llama_rag.errors import EmbedderMismatchError

    settings = load_settings(None, {"index.dir": tmp_path / "index"})
    core = RetrieverCore(settings, embedder=FakeEmbedder())
    _publish(core.store, ["alpha"])
    other = FakeEmbedder()
    other.info = EmbedderInfo(name="fake", dim=16, backend="openvino", quantization="int8")
    core.embedder = other
    core.versions = {}
    core.refresh()
    with pytest.raises(EmbedderMismatchError, match=r"fake \(openvino int8\)"):
        core.search(SearchRequest(query="alpha"))

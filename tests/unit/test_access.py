"""Access labels at ingest, the rows a group reads, BM25 over them, metadata filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.access import FileLabel, label_file
from indexing.lexical import LexicalIndex
from indexing.retriever import RetrieverCore
from indexing.store import IndexStore
from llama_rag.config import AccessSettings, groups_flag, load_settings
from llama_rag.errors import InvalidInputError, LoadError
from llama_rag.protocol import Access, Filters, SearchRequest
from pipelines.ingest import run
from tests.helpers import write_corpus
from tests.unit.test_ingest import FakeEmbedFiles
from tests.unit.test_retriever import FakeEmbedder

TEXTS = ["the zip archive stores files", "parental leave lasts sixteen weeks",
         "quarterly budget for the finance team", "zip files and tar archives compared",
         "the leave policy of the team", "budget zip"]


def test_bm25_over_some_rows_scores_as_an_index_of_only_those_rows():
    full = LexicalIndex.build(TEXTS)
    allowed = np.array([0, 2, 3, 5])
    alone = LexicalIndex.build([TEXTS[i] for i in allowed])
    for query in ("zip archive", "budget", "leave weeks", "the", "zip zip budget"):
        limited = full.scores(query, len(TEXTS), allowed)
        assert np.allclose(limited[allowed], alone.scores(query, len(allowed)), atol=1e-6)
        assert not limited[np.setdiff1d(np.arange(len(TEXTS)), allowed)].any()
    # a forbidden row's words change nothing: "leave" is only in rows 1 and 4
    assert not full.scores("leave", len(TEXTS), allowed).any()


def test_bm25_scores_are_bm25s_lucene_scores():
    import bm25s

    reference = bm25s.BM25()
    reference.index(bm25s.tokenize(TEXTS, stopwords="en", show_progress=False),
                    show_progress=False)
    ours = LexicalIndex.build(TEXTS)
    for query in ("zip archive", "zip zip budget", "leave"):
        tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        assert np.allclose(ours.scores(query, len(TEXTS)), reference.get_scores(tokens), atol=1e-5)


def test_bm25_counts_survive_a_save_and_load(tmp_path: Path):
    full = LexicalIndex.build(TEXTS)
    full.save(tmp_path)
    again = LexicalIndex.load(tmp_path)
    assert np.allclose(again.scores("zip budget", len(TEXTS)), full.scores("zip budget", len(TEXTS)))


def test_labels_take_the_sidecar_then_the_document_then_the_folder_then_the_rules(tmp_path):
    root = write_corpus(tmp_path / "c", {
        "hr/.access": "hr  # the HR folder\n", "hr/pay.md": "x", "hr/open.md": "x",
        "hr/open.md.access": "public", "eng/a.md": "x", "misc.md": "x"})
    rules = AccessSettings(rules={"eng/*": ["eng"], "**/a.md": ["eng-leads"]})
    pay = label_file(root / "hr/pay.md", "hr/pay.md", rules)
    assert pay == FileLabel(folder=["hr"])
    assert pay.groups(["finance"], "public") == ["finance"]  # front matter over the folder
    assert label_file(root / "hr/open.md", "hr/open.md", rules).groups(["hr"], "none") == ["public"]
    assert label_file(root / "eng/a.md", "eng/a.md", rules).groups(None, "public") == \
        ["eng", "eng-leads"]
    misc = label_file(root / "misc.md", "misc.md", rules)
    assert misc.groups(None, "public") == ["public"] and misc.groups(None, "none") == []
    (root / "misc.md.access").write_text("not ok!")
    with pytest.raises(LoadError, match="invalid group"):
        label_file(root / "misc.md", "misc.md", rules)


def test_groups_flag_and_settings_refuse_bad_names():
    assert groups_flag(None) is None and groups_flag("") == frozenset()
    assert groups_flag("hr,finance") == {"hr", "finance"}
    with pytest.raises(ValueError):
        groups_flag("hr,no!")
    with pytest.raises(ValueError):
        AccessSettings(rules={"x/*": ["bad name"]})


@pytest.fixture
def settings(tmp_path: Path):
    (tmp_path / "fake-embedder").mkdir()
    return load_settings(None, {"index.dir": str(tmp_path / "idx"),
                                "models.embedder": str(tmp_path / "fake-embedder"),
                                "models.embed_backend": "torch",
                                "chunking.max_tokens": 40, "chunking.overlap_tokens": 5,
                                "access.rules": {"finance/*": ["finance"]}})


def _corpus(root: Path) -> Path:
    return write_corpus(root, {
        "hr/.access": "hr", "hr/leave.md": "# Leave\n\nParental leave lasts sixteen weeks.",
        "finance/budget.md": "# Budget\n\nThe quarterly budget is 4 million.",
        "eng/build.md": "---\naccess: [eng]\nversion: 3\nreleased: 2026-05-01\n---\n"
                        "# Build\n\nRun make to build the zip tool.",
        "shared/welcome.md": "# Welcome\n\nWelcome to the company handbook.",
        "bad/x.md": "text", "bad/x.md.access": "??"})


def _groups(settings) -> dict[str, list[str]]:
    table = IndexStore(settings.index.dir).open().chunks
    return dict(zip(table.column("source").to_pylist(), table.column("groups").to_pylist()))


def test_ingest_stores_groups_per_chunk_and_relabels_without_embedding(tmp_path, settings):
    root = _corpus(tmp_path / "corpus")
    fake = FakeEmbedFiles()
    first = run([root], settings, embed_files=fake)
    assert _groups(settings) == {"eng/build.md": ["eng"], "finance/budget.md": ["finance"],
                                 "hr/leave.md": ["hr"], "shared/welcome.md": ["public"]}
    assert [e["source"] for e in first.errors] == ["bad/x.md"]  # a bad label: not indexed
    manifest = IndexStore(settings.index.dir).open().manifest
    assert manifest.files["hr/leave.md"].groups == ["hr"]
    before = np.load(Path(settings.index.dir) / "versions" / first.version / "vectors.npy")

    (root / "hr/.access").write_text("hr, managers")  # a label alone changes
    fake.embedded.clear()
    again = run([root], settings, embed_files=fake)
    assert again.published and again.relabeled == 1 and again.chunks_embedded == 0
    assert fake.embedded == [] and _groups(settings)["hr/leave.md"] == ["hr", "managers"]
    after = np.load(Path(settings.index.dir) / "versions" / again.version / "vectors.npy")
    assert np.array_equal(before, after)
    assert not run([root], settings, embed_files=fake).published  # nothing changed now


@pytest.fixture
def core(tmp_path, settings):
    run([_corpus(tmp_path / "corpus")], settings, embed_files=FakeEmbedFiles())
    embedder = FakeEmbedder()
    embedder.info = embedder.info.model_copy(update={"name": "fake-embedder"})
    return RetrieverCore(settings, embedder=embedder)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_a_group_sees_its_documents_and_public_ones_in_every_mode(core, mode):
    hr = Access(subject="t", groups=frozenset({"hr"}))
    for query in ("parental leave weeks", "quarterly budget", "build the zip tool", "welcome"):
        found = core.search(SearchRequest(query=query, k=10, mode=mode), hr)
        assert {h.source for h in found.hits} <= {"hr/leave.md", "shared/welcome.md"}
    nobody = Access(subject="t", groups=frozenset())
    assert {h.source for h in core.search(SearchRequest(query="budget leave", k=10, mode=mode),
                                          nobody).hits} <= {"shared/welcome.md"}


def test_counts_files_and_entries_show_only_what_the_caller_may_read(core):
    hr = Access(subject="t", groups=frozenset({"hr"}))
    assert core.summary(None, hr).documents == 2 and core.summary(None).documents == 4
    assert core.summary(None, hr).failed_files == 0 and core.summary(None).failed_files == 1
    core.check_source("hr/leave.md", hr)
    from llama_rag.errors import NotFoundError
    with pytest.raises(NotFoundError, match="no document"):
        core.check_source("finance/budget.md", hr)
    scoped = core.scoped(hr)
    assert {h.source for h in scoped.search(SearchRequest(query="budget", k=10)).hits} <= \
        {"hr/leave.md", "shared/welcome.md"}


def test_metadata_filters_take_values_operators_and_dates(core):
    def sources(**metadata):
        found = core.search(SearchRequest(query="build", k=10, filters=Filters(metadata=metadata)))
        return {h.source for h in found.hits}

    assert sources(version=3) == {"eng/build.md"}
    assert sources(version={"gte": 2, "lt": 4}) == {"eng/build.md"}
    assert sources(version={"gt": 3}) == set()
    assert sources(released={"gte": "2026-01-01"}) == {"eng/build.md"}
    assert sources(released={"lt": "2026-01-01T00:00:00Z"}) == set()
    assert sources(access={"in": ["eng", "x"]}) == {"eng/build.md"}  # a list field: any element
    assert len(sources(modified={"gte": "2000-01-01"})) == 4  # every file has its date
    with pytest.raises(InvalidInputError, match="unknown metadata field") as err:
        sources(relesed="2026")
    assert err.value.param == "filters.metadata.relesed"
    with pytest.raises(ValueError):
        Filters.model_validate({"metadata": {"version": {"between": [1, 2]}}})
    # a field only a forbidden document has is unknown to the caller, as the document is
    hr = Access(subject="t", groups=frozenset({"hr"}))
    with pytest.raises(InvalidInputError):
        core.search(SearchRequest(query="x", filters=Filters(metadata={"version": 3})), hr)


def test_a_version_from_before_labels_is_public(tmp_path):
    from tests.unit.test_store import _publish

    settings = load_settings(None, {"index.dir": tmp_path / "index"})
    _publish(IndexStore(tmp_path / "index"), ["alpha", "beta"])
    core = RetrieverCore(settings, embedder=FakeEmbedder())
    hits = core.search(SearchRequest(query="alpha"), Access(groups=frozenset())).hits
    assert len(hits) == 2  # rows without groups read as public, not as nobody's


def test_pdf_and_docx_properties_become_metadata_and_may_name_groups():
    import io

    import docx
    from pypdf import PdfReader, PdfWriter

    from indexing.loaders import load_bytes
    from tests.helpers import make_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Quarterly figures"))))
    writer.add_metadata({"/Author": "Ann Lee", "/Keywords": "budget; access: finance, board",
                         "/CreationDate": "D:20240102030405Z"})
    out = io.BytesIO()
    writer.write(out)
    [pdf] = load_bytes(out.getvalue(), "q.pdf")
    assert pdf.metadata["author"] == "Ann Lee" and pdf.metadata["access"] == ["finance", "board"]
    assert pdf.metadata["created"] == "2024-01-02T03:04:05"
    document = docx.Document()
    document.add_paragraph("Salary bands for 2026.")
    document.core_properties.keywords = "access: hr"
    document.core_properties.author = "HR team"
    buf = io.BytesIO()
    document.save(buf)
    [doc] = load_bytes(buf.getvalue(), "bands.docx")
    assert doc.metadata["access"] == ["hr"] and doc.metadata["author"] == "HR team"

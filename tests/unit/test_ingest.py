"""The incremental ingest logic, with the Ray stage replaced by an in-process fake."""

import json
from pathlib import Path

import numpy as np
import pytest

from indexing.chunking import Chunker
from tests.helpers import whitespace_tokens
from indexing.store import IndexStore
from llama_rag.config import load_settings
from llama_rag.errors import EmptyCorpusError, IndexLockedError, NotFoundError
from pipelines.ingest import file_rows, run
from tests.helpers import hash_vectors, make_pdf, write_corpus


class FakeEmbedFiles:
    """Runs the same per-file rows as the Ray stage, with hash vectors; counts what it embeds."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.embedded: list[str] = []
        self.fail_after = fail_after

    def __call__(self, files, embedder, settings):
        chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                          whitespace_tokens)
        for n, f in enumerate(files):
            if self.fail_after is not None and n >= self.fail_after:
                raise RuntimeError("worker died")
            rows = file_rows(f, chunker, settings.index)
            batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
            batch["error"] = np.array([r["error"] for r in rows])
            vectors = hash_vectors([r["embed_text"] or "-" for r in rows])
            batch["vector"] = vectors
            self.embedded += [r["source"] for r in rows if not r["error"]]
            yield batch


@pytest.fixture
def settings(tmp_path: Path):
    (tmp_path / "fake-embedder").mkdir()
    return load_settings(None, {"index.dir": str(tmp_path / "idx"),
                                "models.embedder": str(tmp_path / "fake-embedder"),
                                "models.embed_backend": "torch",  # nothing to export
                                "chunking.max_tokens": 40, "chunking.overlap_tokens": 5})


def _corpus(root: Path) -> Path:
    return write_corpus(root, {
        "a.md": "# Alpha\n\n" + "alpha words here. " * 40,
        "sub/b.txt": "Beta text about zip archives.\n\nMore beta.",
        "c.pdf": make_pdf("Gamma in a pdf"),
        "bad/empty.txt": "",
        "bad/binary.txt": b"\x00\x01\x02",
        "bad/latin1.txt": "caf\u00e9".encode("latin-1"),
        "bad/broken.pdf": b"%PDF-1.4 garbage",
        "ignored.bin": b"not an indexed suffix",
        ".hidden/secret.txt": "hidden",
    })


def test_first_run_indexes_good_files_and_lists_bad_ones(tmp_path, settings):
    fake = FakeEmbedFiles()
    summary = run([_corpus(tmp_path / "docs")], settings, embed_files=fake)
    assert (summary.added, summary.failed, summary.published) == (7, 4, True)
    version = IndexStore(settings.index.dir).open()
    sources = set(version.chunks.column("source").to_pylist())
    assert sources == {"a.md", "sub/b.txt", "c.pdf"}
    errors = [json.loads(line) for line in (version.path / "errors.jsonl").read_text().splitlines()]
    reasons = {e["source"]: e["error"] for e in errors}
    assert set(reasons) == {"bad/empty.txt", "bad/binary.txt", "bad/latin1.txt", "bad/broken.pdf"}
    assert "binary" in reasons["bad/binary.txt"] and "UTF-8" in reasons["bad/latin1.txt"]
    assert summary.chunks_total == version.chunks.num_rows == len(version.vectors)
    assert version.manifest.files["sub/b.txt"].chunks == 1


def test_second_run_embeds_nothing_then_only_changes(tmp_path, settings):
    docs = _corpus(tmp_path / "docs")
    run([docs], settings, embed_files=FakeEmbedFiles())
    first = IndexStore(settings.index.dir).current()

    again = FakeEmbedFiles()
    summary = run([docs], settings, embed_files=again)
    assert again.embedded == [] and not summary.published
    assert (summary.unchanged, summary.failed, summary.chunks_embedded) == (3, 4, 0)
    assert IndexStore(settings.index.dir).current() == first

    (docs / "sub/b.txt").write_text("Beta rewritten about tar archives.")
    (docs / "c.pdf").unlink()
    (docs / "d.txt").write_text("Delta is new.")
    changed = FakeEmbedFiles()
    summary = run([docs], settings, embed_files=changed)
    assert sorted(set(changed.embedded)) == ["d.txt", "sub/b.txt"]
    assert (summary.added, summary.updated, summary.deleted, summary.unchanged) == (1, 1, 1, 1)
    version = IndexStore(settings.index.dir).open()
    texts = version.chunks.column("text").to_pylist()
    assert any("tar archives" in t for t in texts) and not any("zip archives" in t for t in texts)
    assert "c.pdf" not in set(version.chunks.column("source").to_pylist())
    # unchanged rows kept their vectors: a.md's first chunk still finds itself
    row = version.chunks.column("source").to_pylist().index("a.md")
    assert version.hits(*version.nearest(np.asarray(version.vectors[row]), 1))[0].source == "a.md"


def test_adding_a_second_folder_keeps_the_first(tmp_path, settings):
    one = write_corpus(tmp_path / "one", {"x.txt": "first folder"})
    two = write_corpus(tmp_path / "two", {"y.txt": "second folder"})
    run([one], settings, embed_files=FakeEmbedFiles())
    summary = run([two], settings, embed_files=FakeEmbedFiles())
    assert (summary.added, summary.unchanged, summary.deleted) == (1, 1, 0)


def test_empty_corpus_publishes_nothing(tmp_path, settings):
    empty = write_corpus(tmp_path / "empty", {"notes.bin": b"x"})
    with pytest.raises(EmptyCorpusError, match="no indexable files"):
        run([empty], settings, embed_files=FakeEmbedFiles())
    only_bad = write_corpus(tmp_path / "bad", {"a.txt": "", "b.txt": b"\x00"})
    with pytest.raises(EmptyCorpusError, match="no text could be indexed"):
        run([only_bad], settings, embed_files=FakeEmbedFiles())
    assert IndexStore(settings.index.dir).current() is None


def test_missing_path_is_refused(tmp_path, settings):
    with pytest.raises(NotFoundError, match="path does not exist: .*nope"):
        run([tmp_path / "nope"], settings, embed_files=FakeEmbedFiles())


def test_failure_midway_keeps_previous_version(tmp_path, settings):
    docs = _corpus(tmp_path / "docs")
    run([docs], settings, embed_files=FakeEmbedFiles())
    before = IndexStore(settings.index.dir).current()
    for i in range(3):
        (docs / f"new{i}.txt").write_text(f"new file {i}")
    with pytest.raises(RuntimeError, match="worker died"):
        run([docs], settings, embed_files=FakeEmbedFiles(fail_after=1))
    store = IndexStore(settings.index.dir)
    assert store.current() == before and store.open().chunks.num_rows > 0


def test_concurrent_indexer_is_refused(tmp_path, settings):
    docs = _corpus(tmp_path / "docs")
    with IndexStore(settings.index.dir).lock():
        with pytest.raises(IndexLockedError):
            run([docs], settings, embed_files=FakeEmbedFiles())


def test_a_hostile_corpus_lists_every_bad_file_with_a_reason(tmp_path):
    """Loops, FIFOs, deep folders, links out of the corpus, broken PDFs: no hang, no crash."""
    from indexing.chunking import Chunker
    from indexing.corpus import list_corpus
    from llama_rag.config import IndexSettings
    from pipelines.ingest import file_rows
    from tests.helpers import remove_deep_folders, write_hostile_corpus

    (tmp_path / "corpus").mkdir()
    (tmp_path / "outside").mkdir()
    try:
        expected = write_hostile_corpus(tmp_path / "corpus", tmp_path / "outside")
        settings = IndexSettings()
        files = list_corpus([tmp_path / "corpus"], settings)
        chunker = Chunker(200, 20, lambda text: len(text.split()))
        rows = {f.source: file_rows(f, chunker, settings) for f in files}
    finally:
        remove_deep_folders(tmp_path / "corpus")
    errors = {s: r[0]["error"] for s, r in rows.items() if r[0]["error"]}
    assert set(errors) == set(expected)
    for source, word in expected.items():
        assert word in errors[source], (source, errors[source])
    good = {s for s in rows if s not in errors}
    assert good == {"good/ok.md", "/".join(["d"] * 1200 + ["deep.md"])}
    assert not any("secret outside" in r["text"] for rs in rows.values() for r in rs)


def test_gate_refuses_a_worse_version_and_keeps_current(tmp_path, settings, monkeypatch):
    from indexing.embedder import EmbedderInfo
    from qa.evaluation.gate import GateSpec
    from llama_rag.errors import InvalidInputError

    class FakeEmbedder:
        info = EmbedderInfo(name="fake-embedder", dim=16)

        def encode(self, texts):
            return hash_vectors(texts)

    monkeypatch.setattr("indexing.retriever.settings_embedder", lambda s: FakeEmbedder())
    # hash vectors have no meaningful cosine: let every hit and passage count as relevant
    settings = settings.model_copy(update={"qa": settings.qa.model_copy(
        update={"min_score": -1, "min_passage_score": -1})})
    docs = _corpus(tmp_path / "docs")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "Beta text about zip archives", "sources": ["sub/b.txt"],
                              "reference": "Beta text about zip archives. More beta."}) + "\n")
    gate = GateSpec(qa=qa, min_hit5=0.9)
    first = run([docs], settings, embed_files=FakeEmbedFiles(), gate=gate)
    assert first.published and first.gate.passed and first.gate.current is None
    # the extractive answer quotes the sentence and the short paragraph it reads on into
    assert first.gate.candidate.answer_f1 == 1.0
    store = IndexStore(settings.index.dir)

    (docs / "sub" / "b.txt").unlink()  # a corpus missing the page the QA set needs
    worse = run([docs], settings, embed_files=FakeEmbedFiles(), gate=gate)
    assert not worse.published and not worse.gate.passed and worse.version == first.version
    assert store.current() == first.version and "hit@5 0.000" in worse.gate.reasons[0]
    assert sorted(p.name for p in store.versions.iterdir()) == [first.version]  # no half version

    (docs / "sub" / "b.txt").write_text("Beta text about zip archives.\n\nMore beta.\n")
    better = run([docs], settings, embed_files=FakeEmbedFiles(), gate=gate)
    assert better.published and better.gate.passed and store.current() == better.version
    assert better.gate.current.hit_at_5 == 1.0

    qa.write_text("not json\n")
    with pytest.raises(InvalidInputError, match="qa.jsonl:1"):
        run([docs], settings, embed_files=FakeEmbedFiles(), gate=gate)

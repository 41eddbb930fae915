"""Answer quality without a judge: extractive answers, reference sets, metrics, the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.evaluation.gate import GateFigures, GateSpec, decide, load_gate_items
from indexing.api_entries import SymbolIndex
from indexing import api_entries, text
from qa import api_reference, extractive
from qa.answerer import select
from qa.evaluation import scores as m
from llama_rag.errors import InvalidInputError
from qa.evaluation.sets import OFF_TOPIC, make_set, page_items, page_split
from qa.evaluation.report import QAItem, baseline_answer, evaluate
from llama_rag.protocol import Hit

ZIP_ENTRY = ("ZipFile.printdir()\n\nPrint a table of contents for the archive to sys.stdout.\n\n"
             "ZipFile.read(name, pwd=None)\n\nReturn the bytes of the file name in the archive. "
             "name is the name of the file in the archive, or a ZipInfo object.\n\n"
             "Changed in version 3.6: Calling read() on a closed ZipFile will raise a ValueError.")


def hit(n: int, text: str, source: str = "library/zipfile.html", start: int = 0,
        heading: list[str] | None = None) -> Hit:
    return Hit(rank=n, score=0.5, source=source, title="zipfile", text=text,
               chunk_id=f"c{n}", heading=heading or ["zipfile"], start=start,
               end=start + len(text))


class FakeLookups:
    """The answerer's retriever lookups over a fixed set of chunks, recording what was asked."""

    def __init__(self, chunks: list[Hit], similarity=None) -> None:
        self.chunks, self.asked, self._similarity = chunks, [], similarity

    def entries(self, name, collection=None, filters=None):
        self.asked.append(("entries", name))
        return [h for h in self.chunks if any(api_entries.names_match(s, name)
                                              for s in api_entries.entries(h.text))]

    def task_entries(self, pages, words, collection=None):
        self.asked.append(("task", tuple(pages), tuple(words)))
        return [h for h in self.chunks if h.source in pages]

    def similarity(self, sentences, documents):
        if self._similarity:
            return self._similarity(sentences, documents)
        return [[0.5 for _ in documents] for _ in sentences]


# extractive answers

def test_sentences_split_at_stops_but_not_after_abbreviations():
    assert text.sentences("Use e.g. a ZipFile. It reads ZIP_LZMA. A. B. Smith wrote it!") == [
        "Use e.g. a ZipFile.", "It reads ZIP_LZMA.", "A. B. Smith wrote it!"]
    assert text.sentences("Create an archive file (eg. zip or tar). E.g. gztar, ie. gzip'ed "
                          "tar. Done!") == ["Create an archive file (eg. zip or tar).",
                                           "E.g. gztar, ie. gzip'ed tar.", "Done!"]


@pytest.mark.parametrize("question, name", [
    ("What does zipfile.ZipFile.read() do?", "zipfile.ZipFile.read"),
    ("What is the zipfile.ZipFile class?", "zipfile.ZipFile"),
    ("When is zipfile.BadZipFile raised?", "zipfile.BadZipFile"),
    ("What is zipfile.ZIP_STORED?", "zipfile.ZIP_STORED"),
    ("How do I read a zip archive?", None)])
def test_the_subject_of_a_definition_question(question, name):
    assert api_reference.subject(question) == name


def test_definition_is_the_first_sentence_after_the_entry_line():
    hits = [hit(1, "The zipfile module reads archives."), hit(2, ZIP_ENTRY)]
    lookups = FakeLookups([])
    quote, _ = select("What does zipfile.ZipFile.read() do?", hits, lookups)
    assert quote == extractive.Quote(2, "Return the bytes of the file name in the archive.", 1.0)
    assert lookups.asked == []  # found in the hits: nothing looked up, nothing embedded
    assert extractive.render(quote) == "Return the bytes of the file name in the archive [2]."


def test_definition_reads_on_into_the_next_chunk_and_skips_version_notes():
    first = hit(1, "Other text.\n\ntempfile.mktemp(suffix='', prefix='tmp', dir=None)",
                source="library/tempfile.html")
    second = hit(2, "Deprecated since version 2.3: Use mkstemp() instead.\n\nReturn an absolute "
                 "pathname of a file that did not exist at the time the call is made.",
                 source="library/tempfile.html", start=first.end - 5)
    quote = api_reference.definition("What does tempfile.mktemp() do?", [first, second])
    assert quote.n == 2 and quote.text.startswith("Return an absolute pathname")


def test_a_contents_page_listing_names_is_not_an_entry():
    toc = hit(1, "ZipFile.read()\n\nZipFile.write()\n\nWorking with archives", source="contents.html")
    assert api_reference.definition("What does zipfile.ZipFile.read() do?", [toc]) is None
    assert api_entries.entries(toc.text) == [] and api_entries.entries(ZIP_ENTRY) == ["ZipFile.printdir",
                                                                   "ZipFile.read"]


def test_an_undotted_member_counts_only_on_its_module_page():
    text = "eof\n\nTrue if the end-of-stream marker has been reached."
    question = "What is lzma.LZMADecompressor.eof?"
    assert api_reference.definition(question, [hit(1, text, source="library/bz2.html")]) is None
    assert api_reference.definition(question, [hit(1, text, source="library/lzma.html")]).text.startswith("True")


def test_without_a_definition_the_most_similar_sentence_is_quoted():
    hits = [hit(1, "Archives hold files. Reading needs an open archive."),
            hit(2, "ZipFile.read()\n\nZipFile.write()\n\nWorking with archives")]

    def similarity(questions, texts):
        assert "Working with archives" not in texts  # headings and lists are not answers
        return [[0.9 if "Reading" in t else 0.1 for t in texts]]

    quote, _ = select("How do I read an archive?", hits, FakeLookups([], similarity))
    assert quote.n == 1 and quote.text == "Reading needs an open archive."


def test_answer_looks_the_entry_up_by_name_when_the_hits_hold_only_examples():
    examples = hit(1, "Example: ZipFile.read is used like this.\n\nz.read('a')")
    entry = hit(7, ZIP_ENTRY)
    lookups = FakeLookups([entry])
    quote, hits = select("What does zipfile.ZipFile.read() do?", [examples], lookups)
    assert lookups.asked == [("entries", "zipfile.ZipFile.read")]
    assert hits[quote.n - 1] is entry and quote.text.startswith("Return the bytes")


def test_a_how_to_question_quotes_the_entry_its_words_spell():
    assert api_reference.task_words("How do I extract all files from a tar archive?") == [
        "extract", "all", "files", "tar", "archive"]
    assert api_reference.task_words("What is a tar archive?") == []
    assert api_reference.coverage("TarFile.extractall", ["extract", "all"]) == 1.0
    assert api_reference.coverage("read_text", ["read"]) == 0.5
    tar = ("TarFile.extract(member)\n\nExtract a member from the archive.\n\n"
           "TarFile.extractall(path='.')\n\nExtract all members from the archive to the "
           "current working directory.")
    top = hit(1, "The tarfile module reads and writes tar archives.", source="library/tarfile.html")
    lookups = FakeLookups([hit(2, tar, source="library/tarfile.html")])
    quote, hits = select("How do I extract all files from a tar archive?", [top], lookups)
    assert quote.text == "Extract all members from the archive to the current working directory."
    assert lookups.asked == [("task", ("library/tarfile.html",),
                              ("extract", "all", "files", "tar", "archive"))]
    follow_up, _ = select("How do I extract a tar archive? And how do I list one?", [top],
                            FakeLookups([hit(2, tar, source="library/tarfile.html")]),
                            asked="And how do I list one?")
    assert follow_up.text == "The tarfile module reads and writes tar archives."  # no list entry


def test_the_baseline_takes_the_sentence_sharing_most_words():
    hits = [hit(1, ZIP_ENTRY)]
    body = baseline_answer("What does ZipFile printdir print?", hits)
    assert body["answer"].startswith("Print a table of contents") and body["citations"][0]["n"] == 1


def test_symbol_index_finds_entries_by_any_dotted_suffix():
    index = SymbolIndex.build(["intro text.", ZIP_ENTRY, "ZipFile.read()\n\nZipFile.write()\n\nx y"])
    assert index.rows("zipfile.ZipFile.read") == [1]
    assert index.rows("tarfile.TarFile.read") == [] and index.rows("nothing") == []


# metrics

def test_token_f1_and_rouge_l_ignore_markers_articles_and_case():
    ref = "Return the bytes of the file name in the archive."
    assert m.token_f1("Return the bytes of the file name in the archive [2].", ref) == 1.0
    assert m.rouge_l("return bytes of file name in archive", ref) == 1.0
    assert m.token_f1("A ZipInfo object.", ref) == 0.0
    assert 0 < m.token_f1("Return the bytes.", ref) < m.rouge_l("Return the bytes of the file.", ref) < 1
    assert m.rouge_l("archive the in name file", ref) < m.token_f1("archive the in name file", ref)


def test_support_and_containment_are_lexical():
    chunk = "ZipFile.read(name)\n\nReturn the bytes of the file name in the archive."
    assert m.contains(chunk, "return  the bytes of the file name in the ARCHIVE.")
    assert m.supported("It returns the bytes of the file in the archive.", [chunk])
    assert not m.supported("It returns a ZipInfo object, not available in Python 3.", [chunk])


def test_answer_scores_on_a_known_run():
    ref = "Return the bytes of the file name in the archive."
    items = [QAItem(question="What does zipfile.ZipFile.read() do?", reference=ref,
                    sources=["library/zipfile.html"]),
             QAItem(question="What is the capital of Australia?")]
    hits = [hit(1, ZIP_ENTRY)]
    answers = {
        items[0].question: {"answerable": True, "answer": "Return the bytes of the file name in "
                            "the archive [1]. It is fast [1].",
                            "citations": [{"source": "library/zipfile.html", "chunk_id": "c1"}]},
        items[1].question: {"answerable": False, "answer": "", "citations": []}}
    report = evaluate(items, lambda q: hits, answers.__getitem__)
    a = report.answers
    assert (a.questions, a.answered, a.cites_reference_page, a.citation_correct) == (1, 1, 1.0, 1.0)
    assert 0.7 < a.token_f1 < 1 and a.support == 0.5  # "It is fast" is in no chunk
    assert report.refusal_rate_unanswerable == 1.0
    assert report.baseline.questions == 1 and report.f1_vs_baseline is not None


# reference sets from Sphinx HTML

SPHINX = """<html><body><div class="body" role="main"><section id="zipfile">
<h1>zipfile — Work with ZIP archives</h1>
<p>This module provides tools to create, read, write, append, and list a ZIP file.</p>
<dl class="py method"><dt class="sig sig-object py" id="zipfile.ZipFile.read">
<span class="sig-prename descclassname">ZipFile.</span><span class="sig-name descname">read</span>
(name)</dt><dd><p>Return the bytes of the file <em>name</em> in the archive.  More text.</p></dd></dl>
<dl class="py attribute"><dt class="sig sig-object py" id="spec__">
<span class="sig-name descname">__spec__</span></dt><dd><p>The module spec used to import it.</p></dd></dl>
<dl class="py function"><dt class="sig sig-object py" id="zipfile.is_zipfile">
<span class="sig-name descname">is_zipfile</span></dt><dd><ul><li>a list</li></ul></dd></dl>
<section id="zipfile-objects"><h2>Archive Readers</h2>
<p>Archive readers open a ZIP archive for reading.</p></section>
</section></div></body></html>"""


def test_page_items_take_api_entries_and_answering_headings():
    items = list(page_items(SPHINX.encode(), "library/zipfile.html"))
    assert [(i.question, i.reference) for i in items] == [
        ("What does zipfile.ZipFile.read() do?", "Return the bytes of the file name in the archive."),
        ("What is Archive Readers?", "Archive readers open a ZIP archive for reading.")]
    # "__spec__" (its id lost the underscores) and an entry without a sentence are skipped


def test_make_set_splits_by_page_and_adds_off_topic_questions(tmp_path):
    for n in range(12):
        (tmp_path / "library").mkdir(exist_ok=True)
        (tmp_path / "library" / f"p{n}.html").write_text(SPHINX.replace("zipfile.", f"m{n}."))
    test = make_set(tmp_path, None, 0, "test", 3)
    train = make_set(tmp_path, None, 0, "train", 0)
    pages = lambda items: {s for i in items for s in i.sources}  # noqa: E731
    assert pages(test) and pages(train) and not pages(test) & pages(train)
    assert len(pages(test) | pages(train)) == 12
    assert [i.question for i in test[-3:]] == [q for q in test[-3:] and
                                                [i.question for i in test[-3:]] if q in OFF_TOPIC]
    assert all(not i.sources and i.reference is None for i in test[-3:])
    assert make_set(tmp_path, 2, 0, "all", 0) == make_set(tmp_path, 2, 0, "all", 0)  # seeded
    assert page_split("library/p1.html", 0) == page_split("library/p1.html", 0)
    with pytest.raises(InvalidInputError, match="not a folder"):
        make_set(tmp_path / "nope", None, 0, "test", 0)


# the gate

def test_gate_refuses_under_a_threshold_or_a_drop_from_the_current_version():
    spec = GateSpec(qa=Path("qa.jsonl"), min_hit5=0.8, min_answer_f1=0.5, max_drop=0.02)
    good = GateFigures(hit_at_5=0.95, mrr=0.9, answer_f1=0.7)
    assert decide(spec, good, None).passed
    assert decide(spec, good, GateFigures(hit_at_5=0.96, mrr=0.91, answer_f1=0.71)).passed
    worse = decide(spec, GateFigures(hit_at_5=0.85, mrr=0.9, answer_f1=0.7), good)
    assert not worse.passed and worse.reasons == [
        "hit_at_5 0.850 fell below the current version's 0.950 by more than 0.02"]
    low = decide(spec, GateFigures(hit_at_5=0.5, mrr=0.4, answer_f1=0.2), None)
    assert len(low.reasons) == 2 and "--min-hit5 0.8" in low.reasons[0]


def test_gate_qa_file_is_checked_before_any_work(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "off topic?", "sources": []}) + "\n")
    with pytest.raises(InvalidInputError, match="no question has expected sources"):
        load_gate_items(GateSpec(qa=qa))
    qa.write_text(json.dumps({"question": "q?", "sources": ["a.html"]}) + "\n")
    with pytest.raises(InvalidInputError, match="needs reference answers"):
        load_gate_items(GateSpec(qa=qa, min_answer_f1=0.5))
    assert len(load_gate_items(GateSpec(qa=qa))) == 1


def test_follow_ups_pair_siblings_and_name_the_second_by_its_bare_name():
    import random

    from qa.evaluation.sets import EvalItem, follow_ups

    def entry(name: str) -> EvalItem:
        return EvalItem(question=f"What does {name}() do?", reference=f"{name} does it.",
                        sources=["library/zipfile.html"], kind="api:method", anchor=name)

    items = [entry("zipfile.ZipFile.read"), entry("zipfile.ZipFile.write"),
             entry("tarfile.TarFile.add"),  # no sibling: no conversation
             EvalItem(question="What is zipfile.ZIP_STORED?", kind="api:data",
                      anchor="zipfile.ZIP_STORED")]
    [conv] = follow_ups(items, random.Random(0), 5)
    first = conv.turns[0]
    assert first in ("What does zipfile.ZipFile.read() do?", "What does zipfile.ZipFile.write() do?")
    assert conv.kind == "follow-up" and conv.question in ("And what does read() do?",
                                                          "And what does write() do?")
    assert conv.anchor.rsplit(".", 1)[1] in conv.question and conv.anchor not in first

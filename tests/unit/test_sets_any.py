"""`eval make-set` on a corpus of any kind: FAQ entries and headings, split by document."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main
from qa.evaluation.sets_any import make_any_set
from tests.helpers import make_pdf, write_corpus

FAQ = ("# Git questions\n\n## Remotes\n\nHow do I change the URL of a remote?\n\n"
       "Run git remote set-url with the new address of the repository.\n\n"
       "## Installing hooks\n\nHooks are installed by copying scripts into the hooks folder.\n")


def test_faq_entries_and_headings_of_markdown_and_pdf_become_items(tmp_path):
    docs = write_corpus(tmp_path / "docs", {
        "faq.md": FAQ,
        "manual.pdf": make_pdf("Can the tool read from standard input?\n\nYes, give a dash "
                               "instead of the file name to read from standard input."),
        "broken.pdf": b"%PDF-1.4 garbage"})
    items = make_any_set(docs, None, 0, "all", 2)
    by_question = {i.question: i for i in items}
    faq = by_question["How do I change the URL of a remote?"]
    assert faq.kind == "faq" and faq.sources == ["faq.md"]
    assert faq.reference.startswith("Run git remote set-url")
    assert faq.key_facts and "remote" not in faq.key_facts  # not a word the question holds
    assert by_question["How do I go about installing hooks?"].kind == "heading"
    assert any(i.sources == ["manual.pdf"] and i.reference.startswith("Yes, give a dash")
               for i in items)
    assert sum(1 for i in items if i.kind == "off-topic") == 2


def test_the_split_is_by_document_and_the_cli_picks_the_kind(tmp_path):
    docs = write_corpus(tmp_path / "docs", {f"faq{n}.md": FAQ for n in range(12)})
    train = {s for i in make_any_set(docs, None, 0, "train", 0) for s in i.sources}
    test = {s for i in make_any_set(docs, None, 0, "test", 0) for s in i.sources}
    assert train and test and not train & test
    out = tmp_path / "qa.jsonl"
    result = CliRunner().invoke(main, ["eval", "make-set", "--from", str(docs), "--out",
                                       str(out), "--split", "all", "--unanswerable", "0"])
    assert result.exit_code == 0, result.output
    assert '"kind":"faq"' in out.read_text() and '"key_facts"' in out.read_text()

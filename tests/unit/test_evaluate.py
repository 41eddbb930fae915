"""QA-set metrics: hit@k, MRR, answerable rate, citation precision."""

from __future__ import annotations

import json

import pytest

from llama_rag.errors import InvalidInputError
from qa.evaluation.report import QAItem, evaluate, load_qa, rank_of_first_match
from llama_rag.protocol import Hit

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_rank_dedups_sources_and_matches_suffixes():
    ranked = ["library/csv.html", "library/csv.html", "x/library/zipfile.html"]
    assert rank_of_first_match(ranked, ["library/zipfile.html"]) == 2
    assert rank_of_first_match(ranked, ["nope.html"]) is None


def test_metrics_on_a_known_run():
    items = [QAItem(question="a", sources=["a.html"]), QAItem(question="b", sources=["b.html"]),
             QAItem(question="football?", sources=[])]
    ranked = {"a": ["a.html", "x.html"], "b": ["x.html", "y.html", "b.html"], "football?": ["x.html"]}
    answers = {"a": {"answerable": True, "citations": [{"source": "a.html"}, {"source": "x.html"}]},
               "b": {"answerable": False, "citations": []},
               "football?": {"answerable": False, "citations": []}}
    def search(q: str) -> list[Hit]:
        return [Hit(rank=r, score=0.5, source=s, title="", text="t", chunk_id=f"{q}{r}",
                    heading=[], start=0, end=1) for r, s in enumerate(ranked[q], start=1)]

    report = evaluate(items, search, answers.__getitem__)
    assert (report.hit_at_1, report.hit_at_5, report.mrr) == (0.5, 1.0, round((1 + 1 / 3) / 2, 3))
    assert report.answerable_rate == 0.5 and report.refusal_rate_unanswerable == 1.0
    assert report.citation_precision == 0.5
    assert evaluate(items, search).answerable_rate is None  # retrieval only
    assert report.answers is None and report.baseline is None  # no reference sentences


def test_bad_qa_file_names_the_line(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps({"question": "ok", "sources": []}) + "\n{\"sources\": []}\n")
    with pytest.raises(InvalidInputError, match="qa.jsonl:2"):
        load_qa(bad)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_qa(tmp_path / "missing.jsonl")


def test_the_dev_qa_set_loads():
    items = load_qa(ROOT / "eval" / "python-docs-qa.jsonl")
    assert len(items) >= 20 and any(not i.sources for i in items)


def test_a_key_fact_is_held_as_whole_words_and_a_command_by_either_spelling():
    from qa.evaluation.scores import holds_fact

    assert holds_fact("git-clean - Remove untracked files [2]", ["git clean"])
    assert holds_fact("Run git  clean -f.", ["git clean"])
    assert not holds_fact("It takes a block lock.", ["LOCK TABLE"])
    assert not holds_fact("Blocks are locked.", ["lock"])
    assert holds_fact("Use the \u201cpg_dump\u201d program [1].", ["pg_dump"])

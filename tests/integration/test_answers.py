"""Answers measured right: reference sets from the docs, extractive answers, the index gate.

Real Python docs pages, the session's index and server (tests/cluster.py), real Ray
ingest for the gate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cluster import API_KEY, AUTH, QA_PAGES, ask_events, copy_pages

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "llama-rag")


def make_set(docs: Path, out: Path, *flags: str) -> list[dict]:
    done = subprocess.run([CLI, "eval", "make-set", "--from", str(docs), "--out", str(out),
                           *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_extractive_answer_quotes_the_entry_with_its_citation(llm_server):
    body = {"question": "What does zipfile.ZipFile.read() do?", "answer_mode": "extractive"}
    resp = httpx.post(f"{llm_server}/v1/ask", json=body, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["answer"].startswith("Return the bytes of the file name in the archive [")
    assert answer["citation_mode"] == "quoted" and answer["usage"]["completion_tokens"] == 0
    [cited] = answer["citations"]
    assert cited["source"] == "library/zipfile.html" and f"[{cited['n']}]" in answer["answer"]
    events = ask_events(llm_server, body, timeout=60)
    assert [e for e, _ in events] == ["sources", "token", "done"]
    assert events[-1][1]["answer"] == answer["answer"]
    off = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60, json={
        "question": "Who won the 1998 football world cup?", "answer_mode": "extractive"}).json()
    assert off["answerable"] is False and off["citations"] == []
    bad = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60,
                     json={"question": "zip?", "answer_mode": "poetry"})
    assert bad.status_code == 400 and "answer_mode" in bad.text


def test_derived_questions_score_answers_beside_the_baseline(llm_server, ray_cluster, tmp_path):
    """make-set on the indexed pages, then `eval --answer-modes extractive` against the
    server: the answers beat the extractive baseline scored in the same run."""
    docs = copy_pages(tmp_path / "docs", QA_PAGES)
    items = make_set(docs, tmp_path / "qa.jsonl", "--split", "all", "--n", "24",
                     "--unanswerable", "6")
    assert len(items) == 30 and sum(1 for i in items if not i["sources"]) == 6
    assert all(i["reference"] and i["sources"][0].startswith("library/") for i in items[:24])
    out = subprocess.run([CLI, "eval", "--qa", str(tmp_path / "qa.jsonl"), "--url", llm_server,
                          "--answer-modes", "extractive", "--json", "--out",
                          str(tmp_path / "answers")], capture_output=True, text=True,
                         env=ray_cluster.env(LLAMA_RAG_API_KEY=API_KEY), timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    answers, baseline = report["answers"], report["baseline"]
    assert answers["questions"] == 24 and answers["token_f1"] >= 0.6
    assert answers["token_f1"] > baseline["token_f1"] and answers["cites_reference_page"] >= 0.85
    assert report["refusal_rate_unanswerable"] >= 0.8
    saved = json.loads((tmp_path / "answers.json").read_text())["answer_modes"]
    assert set(saved) == {"extractive"} and (tmp_path / "answers.png").stat().st_size > 5_000


def test_index_gate_refuses_a_worse_version_and_publishes_a_good_one(ray_cluster, tmp_path):
    pages = ["glob", "gzip", "tempfile"]
    corpus = copy_pages(tmp_path / "corpus", pages)
    make_set(corpus, tmp_path / "qa.jsonl", "--split", "all", "--unanswerable", "0")
    index_dir = tmp_path / "index"

    def index(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "index", str(corpus), "--index-dir", str(index_dir),
                               "--no-progress", "--gate", str(tmp_path / "qa.jsonl"),
                               "--min-hit5", "0.9", *flags], capture_output=True, text=True,
                              env=ray_cluster.env(), timeout=600)

    first = index()
    assert first.returncode == 0, first.stderr
    assert "gate: passed" in first.stdout and "published version" in first.stdout
    current = (index_dir / "CURRENT").read_text().strip()
    gzip_page = corpus / "library" / "gzip.html"
    saved = gzip_page.read_bytes()
    gzip_page.unlink()  # a corpus missing a page the QA set asks about
    worse = index()
    assert worse.returncode == 5, worse.stdout + worse.stderr
    assert "gate refused the new version" in worse.stderr and f"stays {current}" in worse.stderr
    assert (index_dir / "CURRENT").read_text().strip() == current
    assert [p.name for p in (index_dir / "versions").iterdir()] == [current]
    gzip_page.write_bytes(saved)  # the current version has it: no change, nothing to publish
    assert "nothing changed" in index().stdout
    copy_pages(corpus, ["zlib"])  # a page more, none less: better or equal, published
    again = index("--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["published"] and summary["gate"]["passed"]
    assert summary["gate"]["candidate"]["hit_at_5"] >= summary["gate"]["current"]["hit_at_5"]
    assert (index_dir / "CURRENT").read_text().strip() == summary["version"] != current


def test_one_answering_path_the_gate_eval_and_ask_give_the_same_answers(
        llm_server, qa_index, ray_cluster, tmp_path):
    """/v1/ask (extractive), the index gate's scoring of a version and `llama-rag eval
    --index-dir` all answer through qa.answerer: the same answer and citations for the
    same question and index version, and so the same scores."""
    from indexing.retriever import RetrieverCore
    from indexing.store import IndexStore
    from llama_rag.config import load_settings
    from qa.evaluation.targets import local_target

    docs = copy_pages(tmp_path / "docs", QA_PAGES)
    items = make_set(docs, tmp_path / "qa.jsonl", "--split", "all", "--n", "10",
                     "--unanswerable", "2", "--followups", "2")
    questions = [(i["question"], i.get("turns", [])) for i in items] + [
        ("How do I extract all files from a tar archive?", []),
        ("how can I write rows to a csv file", [])]
    settings = load_settings(None, {"index.dir": str(qa_index)})
    version = IndexStore(qa_index).open()
    _, gate_ask = local_target(RetrieverCore(settings, pinned=version), settings)  # as the gate
    for question, turns in questions:
        history = [{"role": "user", "content": t} for t in turns]
        served = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60, json={
            "question": question, "history": history, "answer_mode": "extractive"}).json()
        from llama_rag.protocol import Turn

        local = gate_ask(question, [Turn(**t) for t in history])
        assert served["index_version"] == version.version
        assert (local["answer"], local["answerable"]) == (served["answer"], served["answerable"])
        assert [c["chunk_id"] for c in local["citations"]] == \
            [c["chunk_id"] for c in served["citations"]]

    def scores(*target: str) -> dict:
        done = subprocess.run([CLI, "eval", "--qa", str(tmp_path / "qa.jsonl"), *target,
                               "--json", "--out", str(tmp_path / "answers")],
                              capture_output=True, text=True, timeout=300,
                              env=ray_cluster.env(LLAMA_RAG_API_KEY=API_KEY))
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        return report.get("extractive", report)

    local_report = scores("--index-dir", str(qa_index))
    served_report = scores("--url", llm_server, "--answer-modes", "extractive")
    for key in ("answered", "token_f1", "rouge_l", "cites_reference_page", "citation_correct"):
        assert local_report["answers"][key] == served_report["answers"][key], key

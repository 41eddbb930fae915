"""Grounded QA end to end: real index of Python docs pages, real LLM, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cluster import API_KEY, AUTH, LIMITED_KEY, ask_events

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "llama-rag")
ROOT = Path(__file__).resolve().parents[2]


def ask(url: str, **body) -> httpx.Response:
    """One /v1/ask; the server answers in at most 64 tokens unless ``max_tokens`` says
    otherwise (tests/cluster.py), and sends 503 rather than wait past its own bounds."""
    return httpx.post(f"{url}/v1/ask", json=body, headers=AUTH, timeout=360)


def test_zip_question_is_answered_citing_zipfile(llm_server):
    resp = ask(llm_server, question="How do I read a zip archive?")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answerable"] is True and body["answer"].strip()
    assert "library/zipfile.html" in [c["source"] for c in body["citations"]]
    for c in body["citations"]:  # every citation is marked in the answer
        assert f"[{c['n']}]" in body["answer"] and c["snippet"] and c["chunk_id"]
    assert body["timings"]["retrieve_ms"] > 0 and body["timings"]["generate_ms"] > 0
    assert body["usage"]["completion_tokens"] > 0


def test_question_outside_the_docs_is_not_answerable(llm_server):
    body = ask(llm_server, question="Who won the 1998 football world cup?").json()
    assert body["answerable"] is False and body["citations"] == []
    assert "do not contain" in body["answer"]


def test_ask_streams_sources_then_tokens_then_citations(llm_server):
    events = ask_events(llm_server, {"question": "How do I serialize an object to JSON?",
                                     "max_tokens": 48})
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    assert set(kinds[1:-1]) == {"token"}
    assert "library/json.html" in [c["source"] for c in events[0][1]["citations"]]
    done = events[-1][1]
    assert done["answer"].startswith("".join(d["text"] for e, d in events if e == "token")[:20])
    assert {c["source"] for c in done["citations"]} <= {c["source"] for c in events[0][1]["citations"]}


def test_search_route_filters_by_source_prefix_and_type(llm_server):
    hits = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60, json={
        "query": "compress files", "k": 5, "filters": {"source_prefix": "library/gz"}}).json()["hits"]
    assert hits and {h["source"] for h in hits} == {"library/gzip.html"}
    pdfs = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60, json={
        "query": "compress files", "k": 5, "filters": {"file_type": ["pdf"]}}).json()["hits"]
    assert pdfs and {h["source"] for h in pdfs} == {"manuals/field-guide.pdf"}
    none = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60, json={
        "query": "compress files", "k": 5, "filters": {"file_type": ["docx"]}}).json()["hits"]
    assert none == []


@pytest.mark.parametrize("headers,status", [({}, 401), ({"authorization": "Bearer wrong"}, 403)])
def test_routes_need_a_valid_key_but_healthz_does_not(llm_server, headers, status):
    for method, path in [("POST", "/v1/ask"), ("POST", "/v1/search"), ("GET", "/v1/models"),
                         ("POST", "/v1/chat/completions"), ("GET", "/readyz")]:
        resp = httpx.request(method, f"{llm_server}{path}", headers=headers, timeout=30,
                             json={"question": "x"} if method == "POST" else None)
        assert resp.status_code == status, (path, resp.text)
        assert resp.json()["error"]["type"] in ("authentication_error", "permission_error")
    assert httpx.get(f"{llm_server}/healthz", timeout=10).status_code == 200


def test_keys_never_appear_in_logs(llm_server):
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-rag-serve-{llm_server.rsplit(':', 1)[1]}.log"
    ray_logs = Path("/tmp/ray/session_latest/logs")
    texts = [logs.read_text(errors="replace")]
    texts += [p.read_text(errors="replace") for p in ray_logs.glob("serve/*.log")]
    assert texts and not any(API_KEY in t or LIMITED_KEY in t for t in texts)


@pytest.mark.parametrize("body,status,param", [
    ({"question": "x" * 5000}, 413, "question"),
    ({"question": "   "}, 400, None),
    ({"question": "zip", "k": 0}, 400, None),
    ({"question": "zip", "temperature": -1}, 400, None),
    ({"question": "zip", "filters": {"colour": "red"}}, 400, None),
])
def test_bad_questions_get_4xx_in_one_shape(llm_server, body, status, param):
    resp = ask(llm_server, **body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"type", "message", "param", "code"}
    if param:
        assert error["param"] == param and "2000" in error["message"]
    assert "Traceback" not in resp.text


def test_rate_limit_answers_429_with_retry_after(llm_server):
    """150 quick requests, one after another (a burst in parallel would meet the 503
    backpressure of the small test queue first): beyond the burst of 40 and the refill
    of 10/s they get 429."""
    headers = {"authorization": f"Bearer {LIMITED_KEY}"}
    with httpx.Client(base_url=llm_server, timeout=60, headers=headers) as http:
        results = [http.get("/v1/models") for _ in range(150)]
    limited = [r for r in results if r.status_code == 429]
    assert len(limited) >= 10 and all(r.headers.get("retry-after") for r in limited)
    assert {r.status_code for r in results} == {200, 429}
    assert limited[0].json()["error"]["type"] == "rate_limit_error"
    assert ask(llm_server, question="How do I read a zip archive?", max_tokens=8).status_code == 200


def qa_subset(tmp_path: Path, answerable: int | None = None) -> Path:
    """The dev set's questions about the indexed pages (and the unanswerable ones); with
    ``answerable``, every unanswerable question and only that many answerable ones."""
    from tests.cluster import QA_PAGES

    pages = {f"library/{p}.html" for p in QA_PAGES}
    items = [json.loads(line) for line in (ROOT / "eval" / "python-docs-qa.jsonl").read_text()
             .splitlines() if set(json.loads(line)["sources"]) <= pages]
    if answerable is not None:
        items = [i for i in items if not i["sources"]] + [i for i in items if i["sources"]][
            :answerable]
    path = tmp_path / f"qa-{answerable}.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


EVAL_TOKENS = 24  # enough for the refusal sentence and a first cited sentence


def test_cli_ask_and_eval_against_the_server(llm_server, ray_cluster, pace, tmp_path):
    """Retrieval scored on the whole subset (no LLM), answers on what the asserts need:
    every unanswerable question and two answerable ones."""
    env = ray_cluster.env(LLAMA_RAG_API_KEY=API_KEY)
    out = subprocess.run([CLI, "ask", "How do I read a zip archive?", "--url", llm_server,
                          "--json"], capture_output=True, text=True, env=env,
                         timeout=pace.answer_s(64) + 30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["answerable"] is True
    out = subprocess.run([CLI, "eval", "--qa", str(qa_subset(tmp_path)), "--url", llm_server,
                          "--json", "--retrieval-only"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["hit_at_5"] >= 0.9 and report["mrr"] >= 0.8 and report["ask_p50_ms"] is None
    qa_file = qa_subset(tmp_path, answerable=2)
    questions = len(qa_file.read_text().splitlines())
    bound = pace.answer_s(EVAL_TOKENS, one_after_another=questions) + 30
    try:
        out = subprocess.run([CLI, "eval", "--qa", str(qa_file), "--url", llm_server, "--json",
                              "--max-tokens", str(EVAL_TOKENS)],
                             capture_output=True, text=True, env=env, timeout=bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"llama-rag eval of {questions} questions at {EVAL_TOKENS} tokens did not "
                    f"finish in {bound:.0f} s (derived from {pace})")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["refusal_rate_unanswerable"] == 1.0
    bad = subprocess.run([CLI, "ask", "zip?", "--url", llm_server], capture_output=True,
                         text=True, env=ray_cluster.env(LLAMA_RAG_API_KEY="wrong"), timeout=60)
    assert bad.returncode != 0 and "403" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_eval_on_a_local_index_reports_retrieval_only(qa_index, ray_cluster, tmp_path):
    out = subprocess.run([CLI, "eval", "--qa", str(qa_subset(tmp_path)), "--index-dir",
                          str(qa_index)],
                         capture_output=True, text=True, env=ray_cluster.env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert "hit@5" in out.stdout and "MRR" in out.stdout and "answers:" not in out.stdout


def test_eval_compares_modes_and_writes_json_and_png(qa_index, ray_cluster, tmp_path):
    out = subprocess.run([CLI, "eval", "--qa", str(qa_subset(tmp_path)), "--index-dir",
                          str(qa_index), "--modes", "dense,lexical,hybrid",
                          "--out", str(tmp_path / "modes")],
                         capture_output=True, text=True, env=ray_cluster.env(), timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "modes.json").read_text())["modes"]
    assert set(report) == {"dense", "lexical", "hybrid"}
    assert (tmp_path / "modes.png").stat().st_size > 5_000
    assert all(line.split()[0] in report for line in out.stdout.splitlines()[1:])


def test_an_exact_identifier_ranks_its_page_first_in_hybrid_mode(llm_server):
    resp = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60,
                      json={"query": "crc32", "k": 5, "mode": "hybrid"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mode"] == "hybrid" and body["hits"][0]["source"] == "library/zlib.html"


def test_collections_are_isolated_and_keys_can_be_limited_to_one(llm_server):
    from tests.cluster import DOCS_KEY

    def search(key: str, collection: str | None) -> httpx.Response:
        body = {"query": "zip archive", "k": 5, **({"collection": collection} if collection else {})}
        return httpx.post(f"{llm_server}/v1/search", json=body, timeout=60,
                          headers={"authorization": f"Bearer {key}"})

    main, other = search(API_KEY, None).json(), search(API_KEY, "extra").json()
    assert other["collection"] == "extra"
    assert {h["source"] for h in other["hits"]} <= {"library/bz2.html", "library/lzma.html"}
    assert "library/zipfile.html" in {h["source"] for h in main["hits"]}
    assert search(DOCS_KEY, "extra").status_code == 200
    denied = search(DOCS_KEY, None)
    assert denied.status_code == 403 and denied.json()["error"]["param"] == "collection"
    assert search(API_KEY, "missing").status_code == 404


def test_custom_metrics_reach_rays_prometheus_endpoint(llm_server, ray_cluster):
    """After the QA traffic above: retrieval latency, refusals and generated tokens."""
    from tests.cluster import scrape_until

    ask(llm_server, question="Who won the 1998 football world cup?")  # one refusal at least
    text = scrape_until(ray_cluster, ["ray_llama_rag_retrieval_latency_ms_bucket",
                                      "ray_llama_rag_refusals",
                                      "ray_llama_rag_tokens_generated"])
    assert 'reason="no_relevant_chunks"' in text and 'mode="hybrid"' in text
    assert "ray_serve_num_http_requests" in text  # Serve's own, beside ours

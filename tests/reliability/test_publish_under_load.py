"""Publishing a new index version while queries run: no query fails, and answers move
to the new version once the retriever's poller sees it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster import SWAP_KEY, copy_pages, llama_rag

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

AUTH = {"authorization": f"Bearer {SWAP_KEY}"}
COLLECTION = "live"
PAUSE_S = 0.5  # per client between queries: 2 clients stay under the 600/min rate limit
NEW_PAGE_QUERY = "array of typed values such as signed char, unsigned int or float typecodes"


def _served(url: str, collection: str) -> str | None:
    resp = httpx.get(f"{url}/v1/index", headers=AUTH, timeout=30, params={"collection": collection})
    return resp.json()["version"] if resp.status_code == 200 else None


async def _query_until(url: str, stop: threading.Event, results: list) -> None:
    """Two clients searching the collection for the new page's content in a loop."""

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120) as http:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    resp = await http.post("/v1/search", json={
                        "query": NEW_PAGE_QUERY, "k": 3, "collection": COLLECTION})
                    body = resp.json() if resp.status_code == 200 else {}
                    results.append((time.time(), resp.status_code, body.get("version"),
                                    [h["source"] for h in body.get("hits", [])],
                                    time.perf_counter() - started))
                except httpx.HTTPError as exc:
                    results.append((time.time(), type(exc).__name__, None, [], 0.0))
                await asyncio.sleep(PAUSE_S)

    await asyncio.gather(client(0), client(1))


def test_publishing_a_version_during_queries_fails_none_and_moves_answers(
        llm_server, ray_cluster, qa_index, tmp_path, record):
    first = copy_pages(tmp_path / "v1", ["struct"])
    llama_rag(ray_cluster, "index", str(first), "--index-dir", str(qa_index),
              "--collection", COLLECTION, "--no-progress", timeout=600)
    deadline = time.time() + 90
    while (old := _served(llm_server, COLLECTION)) is None:
        assert time.time() < deadline, "the new collection was not served in 90 s"
        time.sleep(2)

    second = copy_pages(tmp_path / "v2", ["array"])  # a second root: added beside struct
    stop, results = threading.Event(), []
    loop = threading.Thread(target=lambda: asyncio.run(_query_until(llm_server, stop, results)))
    loop.start()
    try:
        time.sleep(3)  # traffic before, during and after the publish
        indexer = subprocess.run(
            [str(Path(sys.executable).parent / "llama-rag"), "index", str(second),
             "--index-dir", str(qa_index), "--collection", COLLECTION, "--no-progress"],
            env=ray_cluster.env(), capture_output=True, text=True, timeout=600)
        assert indexer.returncode == 0, indexer.stderr[-2000:]
        published = time.time()
        deadline = published + 60
        while time.time() < deadline and not any(r[2] not in (None, old) for r in results):
            time.sleep(0.5)
        time.sleep(3)  # and some traffic on the new version
    finally:
        stop.set()
        loop.join(timeout=180)

    failed = [r for r in results if r[1] != 200]
    versions = [r[2] for r in results]
    new = [r for r in results if r[2] not in (None, old)]
    assert results and not failed, failed[:5]
    assert new, f"no answer from a new version within 60 s of publishing ({len(results)} queries)"
    switch = min(r[0] for r in new)
    assert all(r[2] != old for r in results if r[0] > switch + 1)  # no flapping back
    assert all(r[3][0] == "library/array.html" for r in new), new[:3]
    assert all("library/array.html" not in r[3] for r in results if r[2] == old)
    ask = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=300, json={
        "question": "Which typecode does array.array use for a signed char?",
        "collection": COLLECTION, "max_tokens": 48})
    assert ask.status_code == 200 and ask.json()["index_version"] == new[0][2]
    assert "library/array.html" in {c["source"] for c in ask.json()["citations"]}
    latencies = sorted(r[4] for r in results)
    record("publish during queries", queries=len(results), failed=len(failed),
           old_version_answers=versions.count(old), new_version_answers=len(new),
           first_new_answer_after_indexer_exit_s=round(switch - published, 1),
           search_p95_ms=round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1))

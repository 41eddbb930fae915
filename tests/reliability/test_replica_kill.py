"""Kill the LLM replica's process (and its vLLM engine) during traffic: requests in
flight end with a clear error within their timeout, Serve starts a new replica, and
the service answers again. Runs last: the session's app is disturbed for minutes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
import psutil
import pytest

from tests.cluster import AUTH

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.disruptive]

TIMEOUT_S = 120  # the client's per-request timeout
RECOVERY_BOUND_S = 420  # a new replica loads the model and starts vLLM (about 1-2 min here)
BODY = {"question": "How do I read a zip archive?", "max_tokens": 64}


def _llm_processes() -> list[psutil.Process]:
    """The LLM replica (Serve's actor process) and its vLLM engine core child."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        if title.startswith("ray::ServeReplica") and "LLMServer" in title:
            found.append(proc)
            found += [c for c in proc.children(recursive=True)]
    return found


async def _one(http: httpx.AsyncClient, stream: bool,
               generating: asyncio.Event) -> tuple[str, float, str]:
    """One /v1/ask; a streaming one sets ``generating`` when its first token arrives."""
    started, lines = time.perf_counter(), []
    try:
        async with http.stream("POST", "/v1/ask", json={**BODY, "stream": stream}) as resp:
            async for line in resp.aiter_lines():
                lines.append(line)
                if line == "event: token":
                    generating.set()
    except httpx.HTTPError as exc:
        return f"client:{type(exc).__name__}", time.perf_counter() - started, ""
    text = "\n".join(lines)
    outcome = str(resp.status_code)
    if resp.status_code == 200 and stream and "event: error" in text:
        outcome = "stream-error"
    elif resp.status_code == 200 and stream and "event: done" not in text:
        outcome = "stream-cut"
    return outcome, time.perf_counter() - started, text


async def _traffic(url: str, seconds: float,
                   generating: asyncio.Event) -> list[tuple[str, float, str]]:
    """Four clients (two streaming) back to back for ``seconds``."""
    results: list[tuple[str, float, str]] = []

    async def client(n: int, http: httpx.AsyncClient) -> None:
        while time.perf_counter() < end:
            results.append(await _one(http, n % 2 == 1, generating))

    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=TIMEOUT_S) as http:
        end = time.perf_counter() + seconds
        await asyncio.gather(*(client(n, http) for n in range(4)))
    return results


def _clear_error(outcome: str, text: str) -> bool:
    """A failed request says what happened in our error shape or as an SSE error event
    (Serve's proxy sheds load with a plain-text 503: clear too)."""
    if outcome == "stream-error":
        return True
    if outcome == "503" and text.strip() and "Traceback" not in text:
        return True
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(error.get("message")) and "Traceback" not in text


def test_killing_the_llm_replica_during_traffic_fails_clearly_and_recovers(llm_server, record):
    victims = _llm_processes()
    assert victims, "no LLM replica process found"
    old_pids = {p.pid for p in victims}

    async def scenario():
        generating = asyncio.Event()
        traffic = asyncio.create_task(_traffic(llm_server, 25, generating))
        await asyncio.sleep(6)
        generating.clear()
        await asyncio.wait_for(generating.wait(), 60)  # kill mid-answer, not between answers
        for proc in victims:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.perf_counter()
        return await traffic, killed_at

    results, killed_at = asyncio.run(scenario())
    failed = [r for r in results if r[0] != "200"]
    assert failed, "no request failed: the kill did not hit a request in flight"
    assert all(r[1] <= TIMEOUT_S + 5 for r in results)  # none hung past its timeout
    unclear = [(o, t[:200]) for o, _, t in failed if not _clear_error(o, t)]
    assert not unclear, unclear[:3]

    deadline = time.perf_counter() + RECOVERY_BOUND_S
    while True:
        resp = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=TIMEOUT_S, json=BODY)
        if resp.status_code == 200:
            break
        assert time.perf_counter() < deadline, f"not recovered in {RECOVERY_BOUND_S} s"
        time.sleep(5)
    recovered_s = time.perf_counter() - killed_at
    for _ in range(3):  # steady again
        assert httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=TIMEOUT_S,
                          json=BODY).status_code == 200
    assert {p.pid for p in _llm_processes()}.isdisjoint(old_pids)  # a new replica serves
    outcomes = [r[0] for r in results]
    record("kill the LLM replica", requests=len(results), ok=outcomes.count("200"),
           failed=len(failed), failure_kinds={o: outcomes.count(o) for o in set(outcomes)
                                              if o != "200"},
           slowest_failure_s=round(max(r[1] for r in failed), 1),
           slowest_success_s=round(max([r[1] for r in results if r[0] == "200"] or [0]), 1),
           recovered_after_s=round(recovered_s, 1))

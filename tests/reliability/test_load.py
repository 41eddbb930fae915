"""Load at about twice the measured capacity for 60 s against /v1/ask: requests past
capacity are refused with 503 or 429 and Retry-After, admitted ones finish in bounded
time, and the replicas' memory does not grow."""

from __future__ import annotations

import asyncio
import time

import httpx
import psutil
import pytest

from tests.cluster import LOAD_KEY

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

HEADERS = {"authorization": f"Bearer {LOAD_KEY}"}
QUESTIONS = ["How do I read a zip archive?", "How do I parse a CSV file?",
             "How do I create a temporary directory?", "How do I copy a directory tree?"]
MEASURE_S, LOAD_S, TIMEOUT_S = 20, 60, 120
ADMITTED_P95_BOUND_S = 30.0  # the alert threshold in infra/monitoring/alerts.yaml
GROWTH_BOUND_MB = 200


def _body(i: int) -> dict:
    return {"question": QUESTIONS[i % len(QUESTIONS)], "max_tokens": 24}


def serve_memory_mb() -> dict[str, float]:
    """RSS of the Serve replicas and the vLLM engine process, by process title."""
    out: dict[str, float] = {}
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(proc.info["cmdline"] or [])
        if title.startswith(("ray::ServeReplica", "VLLM::EngineCore")) and proc.info["memory_info"]:
            name = title.split()[0]
            out[name] = out.get(name, 0.0) + proc.info["memory_info"].rss / 2**20
    return out


async def _closed_loop(url: str, concurrency: int, seconds: float) -> float:
    """Answers per second with ``concurrency`` clients back to back."""
    done = 0

    async def client(n: int, http: httpx.AsyncClient) -> None:
        nonlocal done
        i = n
        while time.perf_counter() < end:
            resp = await http.post("/v1/ask", json=_body(i))
            done += resp.status_code == 200
            i += concurrency

    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=TIMEOUT_S) as http:
        start = time.perf_counter()
        end = start + seconds
        await asyncio.gather(*(client(n, http) for n in range(concurrency)))
        return done / (time.perf_counter() - start)


async def _open_loop(url: str, rate: float, seconds: float) -> list[tuple[int, float, str | None]]:
    """Requests sent at ``rate`` per second whatever the answers: (status, seconds, Retry-After)."""

    async def one(i: int, http: httpx.AsyncClient):
        started = time.perf_counter()
        try:
            resp = await http.post("/v1/ask", json=_body(i))
        except httpx.HTTPError as exc:
            return type(exc).__name__, time.perf_counter() - started, None
        return resp.status_code, time.perf_counter() - started, resp.headers.get("retry-after")

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=TIMEOUT_S,
                                 limits=limits) as http:
        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, http)))
        return await asyncio.gather(*tasks)


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[int(0.95 * (len(values) - 1))] if values else 0.0


def test_twice_capacity_for_a_minute_sheds_load_cleanly(llm_server, record):
    capacity = asyncio.run(_closed_loop(llm_server, 4, MEASURE_S))
    assert capacity > 0.1, f"capacity measured at {capacity:.2f} answers/s"
    before = serve_memory_mb()
    rate = 2 * capacity
    started = time.perf_counter()
    results = asyncio.run(_open_loop(llm_server, rate, LOAD_S))
    wall = time.perf_counter() - started
    time.sleep(5)
    after = serve_memory_mb()

    statuses = [r[0] for r in results]
    admitted = [r[1] for r in results if r[0] == 200]
    refused = [r for r in results if r[0] in (429, 503)]
    assert set(statuses) <= {200, 429, 503}, {s: statuses.count(s) for s in set(statuses)}
    assert refused, "twice the capacity was all admitted: the load did not exceed capacity"
    assert all(r[2] and int(r[2]) >= 1 for r in refused)  # Retry-After on every refusal
    assert admitted and _p95(admitted) <= ADMITTED_P95_BOUND_S
    assert _p95([r[1] for r in refused]) < 2.0  # refusals are immediate, not timeouts
    growth = {k: after.get(k, 0.0) - v for k, v in before.items()}
    assert before and set(after) == set(before)  # no replica died or restarted
    assert sum(growth.values()) < GROWTH_BOUND_MB, growth
    record("load at 2x capacity", capacity_answers_per_s=round(capacity, 2),
           offered_per_s=round(rate, 2), seconds=LOAD_S, requests=len(results),
           admitted=len(admitted), refused_503=statuses.count(503),
           refused_429=statuses.count(429), admitted_per_s=round(len(admitted) / wall, 2),
           admitted_p50_s=round(sorted(admitted)[len(admitted) // 2], 2),
           admitted_p95_s=round(_p95(admitted), 2),
           refused_p95_s=round(_p95([r[1] for r in refused]), 3),
           rss_growth_mb={k: round(v, 1) for k, v in growth.items()})

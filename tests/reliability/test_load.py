"""Load well past the measured capacity against /v1/ask: requests past the queue bound
are refused with 503 or 429 and Retry-After, admitted ones finish in bounded time, and
the replicas' memory does not grow.

The load is derived from what the test measures (so it exceeds capacity on a slow or
busy machine too): a closed loop of 4 clients gives the answer latency, the offered
rate is at least twice the capacity and keeps at least twice the API's bound (4 running
+ 2 queued) in flight, and the test checks afterwards that it did."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import psutil
import pytest

from tests.cluster import LOAD_KEY

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

HEADERS = {"authorization": f"Bearer {LOAD_KEY}"}
QUESTIONS = ["How do I read a zip archive?", "How do I parse a CSV file?",
             "How do I create a temporary directory?", "How do I copy a directory tree?"]
CLIENTS, MEASURE_S, LOAD_S = 4, 20, 40
API_BOUND = 4 + 2  # the session server's max_ongoing + max_queued (tests/cluster.py)
ADMITTED_P95_ALERT_S = 30.0  # the alert threshold in infra/monitoring/alerts.yaml
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


async def _closed_loop(url: str, concurrency: int, seconds: float, timeout: float) -> list[float]:
    """Latencies of the answers ``concurrency`` clients got back to back for ``seconds``."""
    latencies: list[float] = []

    async def client(n: int, http: httpx.AsyncClient) -> None:
        i = n
        while time.perf_counter() < end:
            started = time.perf_counter()
            resp = await http.post("/v1/ask", json=_body(i))
            assert resp.status_code == 200, resp.text[:300]
            latencies.append(time.perf_counter() - started)
            i += concurrency

    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=timeout) as http:
        end = time.perf_counter() + seconds
        await asyncio.gather(*(client(n, http) for n in range(concurrency)))
    return latencies


async def _open_loop(url: str, rate: float, seconds: float,
                     timeout: float) -> list[tuple[int, float, str | None]]:
    """Requests sent at ``rate`` per second whatever the answers: (status, seconds, Retry-After)."""

    async def one(i: int, http: httpx.AsyncClient):
        started = time.perf_counter()
        try:
            resp = await http.post("/v1/ask", json=_body(i))
        except httpx.HTTPError as exc:
            return type(exc).__name__, time.perf_counter() - started, None
        return resp.status_code, time.perf_counter() - started, resp.headers.get("retry-after")

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=timeout,
                                 limits=limits) as http:
        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, http)))
        return await asyncio.gather(*tasks)


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[int(0.95 * (len(values) - 1))] if values else 0.0


def test_load_past_capacity_sheds_cleanly(llm_server, pace, record):
    timeout = pace.answer_s(24, one_after_another=API_BOUND)
    latencies = asyncio.run(_closed_loop(llm_server, CLIENTS, MEASURE_S, timeout))
    latency = statistics.median(latencies)
    capacity = CLIENTS / statistics.mean(latencies)  # answers/s, from whole answers only
    # at least twice the capacity, and at least twice the API's bound in flight
    rate = max(2 * capacity, 2 * API_BOUND / latency)
    admitted_bound = max(ADMITTED_P95_ALERT_S, 3 * max(latencies))
    before = serve_memory_mb()
    started = time.perf_counter()
    results = asyncio.run(_open_loop(llm_server, rate, LOAD_S, timeout))
    wall = time.perf_counter() - started
    time.sleep(5)
    after = serve_memory_mb()

    statuses = [r[0] for r in results]
    admitted = [r[1] for r in results if r[0] == 200]
    refused = [r for r in results if r[0] in (429, 503)]
    assert set(statuses) <= {200, 429, 503}, {s: statuses.count(s) for s in set(statuses)}
    in_flight = rate * statistics.median(admitted) if admitted else 0.0
    assert in_flight >= 1.5 * API_BOUND, (  # the margin the load was derived for held
        f"offered {rate:.2f}/s x admitted p50 {statistics.median(admitted or [0]):.1f} s = "
        f"{in_flight:.1f} in flight, under 1.5 x the API's bound of {API_BOUND}: the machine "
        f"sped up by more than the margin since the {latency:.1f} s measured")
    assert refused, (f"all {len(results)} requests admitted at {in_flight:.1f} in flight "
                     f"against a bound of {API_BOUND}: the API did not shed load")
    assert all(r[2] and int(r[2]) >= 1 for r in refused)  # Retry-After on every refusal
    assert admitted and _p95(admitted) <= admitted_bound, (_p95(admitted), admitted_bound)
    assert _p95([r[1] for r in refused]) < 2.0  # refusals are immediate, not timeouts
    growth = {k: after.get(k, 0.0) - v for k, v in before.items()}
    assert before and set(after) == set(before)  # no replica died or restarted
    assert sum(growth.values()) < GROWTH_BOUND_MB, growth
    record("load past capacity", capacity_answers_per_s=round(capacity, 2),
           closed_loop_p50_s=round(latency, 2), offered_per_s=round(rate, 2),
           offered_x_capacity=round(rate / capacity, 2), in_flight=round(in_flight, 1),
           seconds=LOAD_S, requests=len(results),
           admitted=len(admitted), refused_503=statuses.count(503),
           refused_429=statuses.count(429), admitted_per_s=round(len(admitted) / wall, 2),
           admitted_p50_s=round(sorted(admitted)[len(admitted) // 2], 2),
           admitted_p95_s=round(_p95(admitted), 2),
           refused_p95_s=round(_p95([r[1] for r in refused]), 3),
           rss_growth_mb={k: round(v, 1) for k, v in growth.items()})

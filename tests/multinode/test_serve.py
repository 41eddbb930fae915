"""The Serve app on three nodes, in order: placed by resources (nothing on the head, the
API over both workers, LLM replicas only where `llm` is offered); the worker node of
the one LLM replica is lost during traffic and its replicas (that LLM replica among
them) come back on the survivor, then a replacement node joins; the LLM deployment
scales 1 -> 2 under a bounded load and the second replica lands on the other worker;
after the load the deployment scales back to 1. Serve's autoscaling decisions are read from
Ray's metrics the whole time. Tests run in file order (each leaves the app as the next
needs it)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from tests.cluster import AUTH, API_KEY, free_port, serve_app
from tests.reliability.test_replica_kill import _clear_error, _one

pytestmark = [pytest.mark.integration, pytest.mark.multinode]
BODY = {"question": "How do I read a zip archive?", "max_tokens": 32}
LLM, API, RETRIEVER = "LLMServer", "LlamaRagApi", "Retriever"
UPSCALE_DELAY_S, DOWNSCALE_DELAY_S = 5, 30
REQUEST_BOUND_S = 120  # no request may take longer, failed or not (the client's timeout)
STARTUP_BOUND_S = 480  # a vLLM replica start while two engines share two cores


def lost_with_node(result: tuple) -> bool:
    """How a client sees a request whose API replica died with its node: Serve's proxy
    answers a plain `500 Internal Server Error`, or cuts the stream it was relaying."""
    outcome, _, text, _ = result
    return (outcome in {"client:RemoteProtocolError", "client:ReadError", "stream-cut"}
            or (outcome == "500" and text.strip() == "Internal Server Error"))


class Sampler(threading.Thread):
    """Reads Serve's autoscaling decision and healthy-replica count for the LLM deployment
    from Ray's Prometheus endpoint on the head every 2 s: (seconds, target, healthy)."""

    def __init__(self, metrics_url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self.stop = metrics_url, [], threading.Event()
        self.started = time.perf_counter()

    def read(self) -> tuple[float | None, float | None]:
        from prometheus_client.parser import text_string_to_metric_families

        values: dict[str, float] = {}
        for family in text_string_to_metric_families(httpx.get(self.url, timeout=10).text):
            for s in family.samples:
                if s.name in ("ray_serve_autoscaling_target_replicas",
                              "ray_serve_deployment_replica_healthy") \
                        and LLM in s.labels.get("deployment", ""):
                    values[s.name] = values.get(s.name, 0) + s.value
        return (values.get("ray_serve_autoscaling_target_replicas"),
                values.get("ray_serve_deployment_replica_healthy"))

    def run(self) -> None:
        while not self.stop.wait(2):
            try:
                target, healthy = self.read()
            except (httpx.HTTPError, ValueError):
                continue
            if target is not None:
                self.samples.append((round(time.perf_counter() - self.started, 1), target, healthy))

    def targets(self) -> list[int]:
        """The decisions in order, repeats folded: [1, 2, 1] for up and down."""
        out: list[int] = []
        for _, target, _ in self.samples:
            if not out or out[-1] != int(target):
                out.append(int(target))
        return out


@pytest.fixture(scope="module")
def mn_app(mn_cluster, shared_index):
    """`llama-rag serve` against the cluster with a GPU-pool style config: LLM replicas
    reserve `llm: 1` (only the workers offer it) and spread by placement-group strategy,
    two API replicas, autoscaling 1..2 on ongoing requests with short delays."""
    env = mn_cluster.env(
        LLAMA_RAG_API_KEYS=API_KEY, LLAMA_RAG_SERVE__RATE_LIMIT_PER_MINUTE="0",
        LLAMA_RAG_SERVE__PROXY_LOCATION="HeadOnly",  # every node shares this machine's ports
        LLAMA_RAG_SERVE__API_REPLICAS="2",
        LLAMA_RAG_LLM__RESOURCES=json.dumps({"llm": 1}),
        LLAMA_RAG_LLM__PLACEMENT_STRATEGY="SPREAD",
        LLAMA_RAG_LLM__MIN_REPLICAS="1", LLAMA_RAG_LLM__MAX_REPLICAS="2",
        LLAMA_RAG_LLM__TARGET_ONGOING_REQUESTS="2",
        LLAMA_RAG_LLM__UPSCALE_DELAY_S=str(UPSCALE_DELAY_S),
        LLAMA_RAG_LLM__DOWNSCALE_DELAY_S=str(DOWNSCALE_DELAY_S),
        LLAMA_RAG_LLM__MAX_MODEL_LEN="2048", LLAMA_RAG_LLM__CPU_KVCACHE_SPACE_GB="1",
        LLAMA_RAG_QA__ANSWER_MODE="generate", LLAMA_RAG_QA__MAX_TOKENS="32",
        LLAMA_RAG_SERVE__DEFAULT_MAX_TOKENS="32")
    yield from serve_app(free_port(), env, "--index-dir", shared_index.uri)


@pytest.fixture(scope="module")
def sampler(mn_app, mn_cluster):
    thread = Sampler(mn_cluster.metrics)
    thread.start()
    yield thread
    thread.stop.set()


def running(cluster) -> dict[str, int]:
    """RUNNING replicas per deployment, as `serve status` counts them."""
    return {name: states.get("RUNNING", 0)
            for name, states in cluster.serve_replicas("llama-rag").items()}


def count(states: dict[str, int], kind: str) -> int:
    return sum(n for name, n in states.items() if kind in name)


def placement(cluster) -> dict[str, list[str]]:
    """Deployment kind -> the nodes of its live replicas."""
    out: dict[str, list[str]] = {}
    for actor in cluster.actors("ServeReplica:llama-rag"):
        kind = next((k for k in (LLM, API, RETRIEVER) if k in actor["class_name"]), "other")
        out.setdefault(kind, []).append(actor["node"])
    return {k: sorted(v) for k, v in out.items()}


async def traffic(url: str, until, clients: int = 4) -> list[tuple[str, float, str, float]]:
    """``clients`` back to back /v1/ask (half streaming) until ``until()`` holds, each
    waiting out a 503's Retry-After: (outcome, seconds, body, sent at)."""
    results = []
    done = asyncio.Event()

    async def client(n: int, http: httpx.AsyncClient) -> None:
        while not done.is_set():
            sent = time.perf_counter()
            outcome, took, text, retry_after = await _one(http, n % 2 == 1, asyncio.Event(), BODY)
            results.append((outcome, took, text, sent))
            await asyncio.sleep(min(retry_after, 5))

    async def watch() -> None:
        while not await asyncio.to_thread(until):
            await asyncio.sleep(3)
        done.set()

    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=REQUEST_BOUND_S) as http:
        await asyncio.gather(watch(), *(client(n, http) for n in range(clients)))
    return results


def test_replicas_are_placed_by_resources(mn_app, mn_cluster, sampler, record):
    where = placement(mn_cluster)
    assert "head" not in sum(where.values(), []), where  # the head offers no CPU and no llm
    assert where[API] == ["worker-a", "worker-b"], where  # two API replicas, one per worker
    assert len(where[RETRIEVER]) == 1 and where[LLM][0].startswith("worker-"), where
    assert count(running(mn_cluster), LLM) == 1  # min_replicas before any load
    record("multi-node: cluster and app start", cluster_start_s=mn_cluster.startup_s,
           app_start_s=round(mn_app.startup_s, 1), placement=where)


def test_losing_a_worker_node_during_traffic(mn_app, mn_cluster, whole_cluster, sampler, record):
    """Before the scale-up, so the one LLM replica is lost with its node and must come back
    on the survivor for the API to answer (two clients: under the scale-up's bar, so the
    lost replicas, not the autoscaler, are what comes back)."""
    before = placement(mn_cluster)
    victim = before[LLM][0]  # the node of the only LLM replica: nothing answers until it is back
    survivor = next(n for n in ("worker-a", "worker-b") if n != victim)
    lost = sorted(kind for kind, nodes in before.items() for node in nodes if node == victim)
    killed: dict[str, float] = {}
    kill_at = time.perf_counter() + 10  # after 10 s of traffic
    deadline = kill_at + STARTUP_BOUND_S

    def back_on_survivor() -> bool:
        if not killed:
            if time.perf_counter() > kill_at:
                killed["at"] = mn_cluster.kill(victim)
            return False
        assert time.perf_counter() < deadline, f"replicas not back in time: {placement(mn_cluster)}"
        if "dead" not in killed:  # Serve's view of the lost replicas is stale until then
            if victim in mn_cluster.node_ids():
                return False
            killed["dead"] = time.perf_counter()
        states = running(mn_cluster)
        where = placement(mn_cluster)
        if count(states, LLM) >= 1 and count(states, API) == 2 and count(states, RETRIEVER) == 1 \
                and set(sum(where.values(), [])) == {survivor} and set(where) == {LLM, API, RETRIEVER}:
            killed["back"] = time.perf_counter()
            return True
        return False

    results = asyncio.run(traffic(mn_app, back_on_survivor, clients=2))
    where = placement(mn_cluster)
    assert set(sum(where.values(), [])) == {survivor}, where  # every replica on the survivor
    hung = [(o, round(t, 1)) for o, t, *_ in results if o.startswith("client:") and "Timeout" in o]
    assert not hung, f"requests ended by the client's {REQUEST_BOUND_S} s timeout: {hung}"
    # requests the lost API replica was running: the process writing them is gone, so
    # Serve's proxy answers its plain 500 or closes a stream mid-body (no `done` event).
    # Only those in flight at the kill, at most one per client, none slow.
    cut = [r for r in results if lost_with_node(r)]
    assert len(cut) <= 2 and all(r[3] < killed["at"] and r[1] < REQUEST_BOUND_S
                                 for r in cut), [(r[0], r[1], r[3] - killed["at"]) for r in cut]
    failed = [r for r in results if r[0] != "200" and not lost_with_node(r)]
    # a failed retrieval or LLM call is a 503 to retry (services.deployments, the LLM gate):
    # a 500 from the API itself would be an error nobody mapped
    unclear = [(o, t[:200]) for o, _, t, _ in failed if o == "500" or not _clear_error(o, t)]
    assert not unclear, (unclear[:3], sorted({r[0] for r in results}),
                         mn_cluster.serve_log_errors())
    after = [r for r in results if r[3] > killed["at"]]
    answered = [r[3] + r[1] - killed["at"] for r in after if r[0] == "200"]
    assert answered, "the API never answered after the node was lost"
    recovered_s = min(answered)
    resp = httpx.post(f"{mn_app}/v1/ask", headers=AUTH, timeout=REQUEST_BOUND_S, json=BODY)
    assert resp.status_code == 200, resp.text[:300]
    outcomes = [r[0] for r in results]
    record("multi-node: lose a worker node during /v1/ask traffic", victim=victim,
           lost=lost, clients=2, requests=len(results),
           ok=outcomes.count("200"), failed={o: outcomes.count(o) for o in set(outcomes) - {"200"}},
           lost_in_flight=sorted(r[0] for r in cut),
           slowest_failure_s=round(max((r[1] for r in failed + cut), default=0), 1),
           node_marked_dead_after_s=round(killed["dead"] - killed["at"], 1),
           answered_again_after_s=round(recovered_s, 1),
           replicas_back_on_survivor_after_s=round(killed["back"] - killed["at"], 1))


def test_llm_scales_up_under_load_onto_the_other_worker(mn_app, mn_cluster, sampler, record):
    started = time.perf_counter()
    deadline = started + STARTUP_BOUND_S

    def two_running() -> bool:
        assert time.perf_counter() < deadline, f"no second LLM replica in {STARTUP_BOUND_S} s"
        return count(running(mn_cluster), LLM) == 2

    results = asyncio.run(traffic(mn_app, two_running, clients=4))
    up_s = time.perf_counter() - started
    where = placement(mn_cluster)
    assert where[LLM] == ["worker-a", "worker-b"], where  # SPREAD: the one with llm free
    decided = next((t for t, target, _ in sampler.samples
                    if target == 2 and t >= started - sampler.started), None)
    assert decided is not None, sampler.samples[-10:]
    failed = [(o, round(took, 1), round(sent - started, 1), text[:200])
              for o, took, text, sent in results if o != "200"]
    assert len(failed) <= 2, (failed, mn_cluster.serve_log_errors())
    record("multi-node: LLM scale-up 1 -> 2 under load", clients=4,
           target_ongoing_requests=2, upscale_delay_s=UPSCALE_DELAY_S,
           decision_after_s=round(decided - (started - sampler.started), 1),
           second_replica_running_after_s=round(up_s, 1), requests=len(results),
           ok=[r[0] for r in results].count("200"))


def test_llm_scales_back_down_after_the_load(mn_app, mn_cluster, sampler, record):
    started = time.perf_counter()
    deadline = started + DOWNSCALE_DELAY_S + 180
    while count(running(mn_cluster), LLM) != 1:
        assert time.perf_counter() < deadline, f"still {running(mn_cluster)}"
        time.sleep(3)
    down_s = time.perf_counter() - started
    while sampler.targets()[-1] != 1:  # Ray exports metrics every few seconds: the decision
        assert time.perf_counter() < deadline + 60, sampler.samples[-5:]  # shows up after
        time.sleep(2)
    targets = sampler.targets()
    assert targets[0] == 1 and 2 in targets and targets[-1] == 1, sampler.samples
    assert httpx.post(f"{mn_app}/v1/ask", headers=AUTH, timeout=REQUEST_BOUND_S,
                      json=BODY).status_code == 200
    record("multi-node: LLM scale-down 2 -> 1 after the load", downscale_delay_s=DOWNSCALE_DELAY_S,
           one_replica_after_s=round(down_s, 1), decisions=targets,
           samples=len(sampler.samples))

"""The LLM gate: bounded waits, 503 at once while the LLM is down, open again once it answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from llama_rag.errors import InvalidInputError, ModelUnavailableError
from services.call_gate import CallGate


class ReplicaDied(Exception):
    pass


class Probe:
    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if not self.healthy:
            raise ReplicaDied("no replica")


def gate(probe: Probe) -> CallGate:
    return CallGate(probe, stall_timeout_s=0.2, answer_timeout_s=0.5, probe_interval_s=0.05,
                   retry_after_s=3, is_replica_failure=lambda e: isinstance(e, ReplicaDied))


async def chunks(*items, delay: float = 0.0, fail: Exception | None = None):
    for item in items:
        await asyncio.sleep(delay)
        yield item
    if fail:
        raise fail


async def collect(g: CallGate, responses, stream: bool = True) -> list:
    return [item async for item in g.call(responses, stream=stream)]


def test_a_healthy_stream_passes_through_unchanged():
    async def run():
        return await collect(gate(Probe()), chunks("a", "b", "c", delay=0.01))
    assert asyncio.run(run()) == ["a", "b", "c"]


def test_a_stalled_stream_is_503_and_closes_the_gate_until_the_probe_passes():
    async def run():
        probe = Probe()
        g = gate(probe)
        started = time.perf_counter()
        with pytest.raises(ModelUnavailableError, match="did not respond within") as err:
            await collect(g, chunks("a", delay=5))
        assert time.perf_counter() - started < 1.0 and err.value.retry_after == 3
        assert not g.is_open
        started = time.perf_counter()
        with pytest.raises(ModelUnavailableError, match="not available"):  # refused at once
            await collect(g, chunks("never"))
        assert time.perf_counter() - started < 0.05
        await asyncio.sleep(0.2)
        assert not g.is_open and probe.calls >= 2  # probing, still down
        probe.healthy = True
        await asyncio.sleep(0.2)
        assert g.is_open
        return await collect(g, chunks("x"))
    assert asyncio.run(run()) == ["x"]


def test_non_streamed_answers_get_the_longer_bound():
    async def run():
        g = gate(Probe())
        assert await collect(g, chunks("whole answer", delay=0.3), stream=False) == ["whole answer"]
        with pytest.raises(ModelUnavailableError):
            await collect(g, chunks("late", delay=0.8), stream=False)
    asyncio.run(run())


def test_a_replica_dying_mid_stream_closes_the_gate():
    async def run():
        g = gate(Probe())
        seen = []
        with pytest.raises(ModelUnavailableError, match="stopped while answering"):
            async for item in g.call(chunks("a", fail=ReplicaDied("actor died")), stream=True):
                seen.append(item)
        assert seen == ["a"] and not g.is_open
    asyncio.run(run())


def test_request_errors_pass_through_and_leave_the_gate_open():
    async def run():
        g = gate(Probe())
        with pytest.raises(InvalidInputError):
            await collect(g, chunks(fail=InvalidInputError("bad")))
        with pytest.raises(KeyError):  # not a replica failure: the caller maps it
            await collect(g, chunks(fail=KeyError("x")))
        assert g.is_open
    asyncio.run(run())


def test_openai_requests_get_a_default_and_a_ceiling_for_max_tokens():
    from services.ray_compat import ChatCompletionRequest

    from llama_rag.config import ServeSettings
    from services.ingress import with_token_bounds

    serve = ServeSettings(default_max_tokens=64, max_tokens_limit=100)
    messages = [{"role": "user", "content": "hi"}]
    unset = ChatCompletionRequest(model="m", messages=messages)
    assert with_token_bounds(unset, serve).max_tokens == 64
    asked = ChatCompletionRequest(model="m", messages=messages, max_tokens=80)
    assert with_token_bounds(asked, serve).max_tokens == 80
    zero = ChatCompletionRequest(model="m", messages=messages, max_tokens=0)
    assert with_token_bounds(zero, serve).max_tokens == 0  # vLLM's own 400 names it
    with pytest.raises(InvalidInputError, match="at most 100") as err:
        with_token_bounds(ChatCompletionRequest(model="m", messages=messages,
                                                max_completion_tokens=500), serve)
    assert err.value.param == "max_tokens"

"""Calls to the retrieval deployment: a lost replica is a 503 to retry, ours pass, bugs stay 500.

A SIGKILL of the retrieval replica under traffic (tried in tests/reliability, then removed)
rarely failed a call at all: Serve re-sends most of them to the new replica. So the mapping
is shown here, on the exceptions Ray raises."""

import asyncio

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from llama_rag.config import ServeSettings
from llama_rag.errors import NotFoundError, RetrievalUnavailableError
from services.deployments import RetrieverClient, unreachable


def Retrieval(handle, retry_after_s: float, timeout_s: float = 60) -> RetrieverClient:
    return RetrieverClient(handle, ServeSettings(retry_after_s=retry_after_s,
                                                 retrieval_timeout_s=timeout_s,
                                                 llm_probe_interval_s=0.05))


class _Response:
    def __init__(self, outcome):
        self.outcome = outcome

    def __await__(self):
        async def done():
            if self.outcome is _HANG:
                await asyncio.sleep(3600)
            return self.result()
        return done().__await__()

    def result(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


_HANG = object()  # a call that Serve holds in its queue: no replica takes it


class _Method:
    def __init__(self, outcome, calls):
        self.outcome, self.calls = outcome, calls

    def remote(self, *args):
        self.calls.append(args)
        return _Response(self.outcome)


class _Handle:
    """A Serve handle whose every method answers ``outcome`` (a value, or raises it)."""

    def __init__(self, outcome):
        self.outcome, self.calls = outcome, []

    def __getattr__(self, name):
        return _Method(self.outcome, self.calls)


LOST = [ActorDiedError(), ActorUnavailableError("unreachable", None),
        BackPressureError(num_queued_requests=3, max_queued_requests=2),
        DeploymentUnavailableError("Retriever")]


@pytest.mark.parametrize("lost", LOST, ids=lambda e: type(e).__name__)
def test_a_lost_replica_is_retryable(lost):
    retrieval = Retrieval(_Handle(lost), retry_after_s=7)
    with pytest.raises(RetrievalUnavailableError, match="retry later") as err:
        asyncio.run(retrieval.call("search", "q"))
    assert err.value.http_status == 503 and err.value.retry_after == 7
    assert err.value.__cause__ is lost


def test_a_call_no_replica_takes_is_a_503_within_the_bound_and_the_next_is_refused_at_once():
    handle = _Handle(_HANG)
    retrieval = Retrieval(handle, retry_after_s=3, timeout_s=0.2)

    async def scenario():
        started = asyncio.get_running_loop().time()
        with pytest.raises(RetrievalUnavailableError, match="did not respond within") as err:
            await retrieval.call("prepare", "q")
        waited = asyncio.get_running_loop().time() - started
        assert 0.2 <= waited < 2 and err.value.retry_after == 3
        calls = len(handle.calls)
        with pytest.raises(RetrievalUnavailableError, match="not available"):
            await retrieval.call("prepare", "q")  # refused at once: not queued behind it
        assert len(handle.calls) - calls <= 1  # at most the gate's own probe went out
        handle.outcome = ["back"]  # a replica answers again: the probe reopens the gate
        for _ in range(100):
            await asyncio.sleep(0.05)
            if retrieval.gate.is_open:
                break
        assert await retrieval.call("search", "q") == ["back"]

    asyncio.run(scenario())


def test_errors_the_retriever_raised_on_purpose_pass_and_bugs_stay_bugs():
    missing = NotFoundError("unknown collection 'x'", param="collection")
    with pytest.raises(NotFoundError) as err:
        asyncio.run(Retrieval(_Handle(missing), 5).call("search", "q"))
    assert err.value is missing
    with pytest.raises(ZeroDivisionError):  # a bug is a 500 with its traceback, not a retry
        asyncio.run(Retrieval(_Handle(ZeroDivisionError()), 5).call("search", "q"))
    assert not unreachable(ZeroDivisionError())


def test_answers_and_arguments_reach_the_caller_unchanged():
    handle = _Handle(["a hit"])
    assert asyncio.run(Retrieval(handle, 5).call("search", "q", 3)) == ["a hit"]
    assert asyncio.run(Retrieval(handle, 5).call("prepare", "body", "extractive")) == ["a hit"]
    assert handle.calls == [("q", 3), ("body", "extractive")]


def test_the_llms_own_failure_is_retryable_and_its_refusal_is_the_callers():
    from llama_rag.errors import ModelUnavailableError, UpstreamError
    from services.api import _raise_if_error
    from services.ray_compat import ErrorResponse

    def error(code: int) -> ErrorResponse:
        return ErrorResponse(error={"message": "Message: boom", "type": "X", "code": code})

    with pytest.raises(ModelUnavailableError) as err:
        _raise_if_error(error(500))
    assert err.value.http_status == 503 and err.value.retry_after > 0
    with pytest.raises(UpstreamError) as refused:
        _raise_if_error([error(400)])
    assert refused.value.http_status == 400
    _raise_if_error(["data: {}"])  # an answer passes

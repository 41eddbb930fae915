"""Calls to the retrieval deployment: a lost replica is a 503 to retry, ours pass, bugs stay 500.

A SIGKILL of the retrieval replica under traffic (tried in tests/reliability, then removed)
rarely failed a call at all: Serve re-sends most of them to the new replica. So the mapping
is shown here, on the exceptions Ray raises."""

import asyncio

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from llama_rag.errors import NotFoundError, RetrievalUnavailableError
from services.deployments import Retrieval, unreachable


class _Response:
    def __init__(self, outcome):
        self.outcome = outcome

    def __await__(self):
        async def done():
            return self.result()
        return done().__await__()

    def result(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


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
def test_a_lost_replica_is_retryable_from_the_loop_and_from_a_thread(lost):
    retrieval = Retrieval(_Handle(lost), retry_after_s=7)
    with pytest.raises(RetrievalUnavailableError, match="retry later") as err:
        asyncio.run(retrieval.call("search", "q"))
    assert err.value.http_status == 503 and err.value.retry_after == 7
    assert err.value.__cause__ is lost
    with pytest.raises(RetrievalUnavailableError):
        retrieval.call_blocking("entries", "zipfile.ZipFile")


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
    assert Retrieval(handle, 5).call_blocking("similarity", ["s"], ["d"]) == ["a hit"]
    assert handle.calls == [("q", 3), (["s"], ["d"])]


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

"""Calls from the API replica to the app's other deployments, and what their failures mean.

A call whose replica died, whose node was lost, or that Serve could not place (the
replica is restarting, backpressure) answered nothing: the client may retry it, so it
is a 503 with Retry-After, never a 500. Errors the deployment raised on purpose (ours,
``llama_rag.errors``) pass through as they are; anything else is a bug and stays a 500.
A call that finds no live retriever replica does not wait in Serve's queue without
bound: the retriever's calls go through a ``CallGate`` as the LLM's do.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from ray.exceptions import (NodeDiedError, OutOfMemoryError, RayActorError,
                            WorkerCrashedError)
from ray.serve.exceptions import (BackPressureError, DeploymentUnavailableError,
                                  ReplicaUnavailableError)

from llama_rag.config import ServeSettings
from llama_rag.errors import LlamaRagError, RetrievalUnavailableError
from services.call_gate import CallGate

log = logging.getLogger(__name__)

_UNREACHABLE = (RayActorError, WorkerCrashedError, NodeDiedError, OutOfMemoryError,
                BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError)


def replica_gone(exc: BaseException) -> bool:
    """The replica's process died, or its vLLM engine did (Ray wraps the engine's
    EngineDeadError raised inside the replica in a RayTaskError)."""
    cause = getattr(exc, "cause", None)
    return isinstance(exc, RayActorError) or any(
        type(e).__name__ == "EngineDeadError" for e in (exc, cause) if e is not None)


def unreachable(exc: BaseException) -> bool:
    """The call reached no live replica, or lost the one it reached: retrying may work."""
    return isinstance(exc, _UNREACHABLE) or replica_gone(exc)


class RetrieverClient:
    """The retrieval deployment's handle: each call bounded by the gate, its loss of the
    replica raised as ``RetrievalUnavailableError`` (503 + Retry-After)."""

    def __init__(self, handle: Any, serve: ServeSettings) -> None:
        self.handle, self.retry_after_s = handle, serve.retry_after_s
        self.gate = CallGate(
            self._probe, stall_timeout_s=serve.retrieval_timeout_s,
            answer_timeout_s=serve.retrieval_timeout_s,
            probe_interval_s=serve.llm_probe_interval_s,
            retry_after_s=max(serve.retry_after_s, serve.llm_probe_interval_s),
            is_replica_failure=replica_gone, unavailable=RetrievalUnavailableError,
            name="the retrieval service")

    async def _probe(self) -> None:
        await self.handle.collections.remote()

    async def call(self, method: str, *args: Any) -> Any:
        async def one():
            yield await getattr(self.handle, method).remote(*args)

        with self._mapped(method):
            [result] = [r async for r in self.gate.call(one(), stream=False)]
        return result

    @contextmanager
    def _mapped(self, method: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if isinstance(exc, LlamaRagError) or not unreachable(exc):
                raise  # ours pass through; anything else is a bug: a 500, traceback logged
            raise self._unavailable(method, exc) from exc

    def _unavailable(self, method: str, exc: Exception) -> RetrievalUnavailableError:
        log.warning("retrieval %s failed: %s: %s", method, type(exc).__name__, exc)
        return RetrievalUnavailableError(
            "the retrieval service is not available (its replica is restarting or its node "
            "was lost); retry later", retry_after=self.retry_after_s)

"""Bounded calls to another deployment: a request never waits out a replica restart.

Serve's router holds a request without limit while a deployment has no running
replica (a killed replica takes a minute or more to come back on the CPU), so a
client would wait until its own timeout. The API replica therefore keeps one gate
per process for each deployment it calls (the LLM, services.ingress; the retriever,
services.deployments):

- every call must produce its first response (a streamed chunk, or the whole
  non-streamed answer) and each further chunk within a bound, or it is answered
  503 + Retry-After (an SSE ``error`` event once a stream has started);
- a call that fails because the replica died, or that times out, closes the gate:
  until a health probe of the deployment succeeds again, new calls are answered
  503 + Retry-After at once instead of queueing behind a restart.

Pure asyncio: the probe and the response stream are injected, so the rules are
unit-tested without Ray.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from llama_rag.errors import LlamaRagError, ModelUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class CallGate:
    """Open while the deployment answers; closed from a replica failure until a probe
    succeeds. ``probe`` raises (or hangs) while no replica can answer; ``unavailable``
    is the error (503) a refused call raises, ``name`` what its message calls the
    deployment."""

    def __init__(self, probe: Callable[[], Awaitable[object]], *, stall_timeout_s: float,
                 answer_timeout_s: float, probe_interval_s: float, retry_after_s: float,
                 is_replica_failure: Callable[[BaseException], bool],
                 unavailable: type[LlamaRagError] = ModelUnavailableError,
                 name: str = "the language model") -> None:
        self._probe = probe
        self.unavailable, self.name = unavailable, name
        self.stall_timeout_s = stall_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.probe_interval_s = probe_interval_s
        self.retry_after_s = retry_after_s
        self._is_replica_failure = is_replica_failure
        self._closed_since: float | None = None
        self._probing: asyncio.Task | None = None

    @property
    def is_open(self) -> bool:
        return self._closed_since is None

    def check(self) -> None:
        """Raise at once while no replica is known to answer."""
        if self._closed_since is not None:
            down = time.monotonic() - self._closed_since
            raise self.unavailable(
                f"{self.name} is not available (down for {down:.0f} s, its replica is "
                "restarting); retry later", retry_after=self.retry_after_s)

    def close(self, why: str) -> None:
        """A call showed that no replica answers: refuse new calls until a probe passes."""
        if self._closed_since is None:
            log.warning("gate of %s closed: %s; new calls get 503 until it answers", self.name,
                        why)
            self._closed_since = time.monotonic()
        if self._probing is None or self._probing.done():
            self._probing = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        while self._closed_since is not None:
            await asyncio.sleep(self.probe_interval_s)
            try:
                await asyncio.wait_for(self._probe(), max(self.probe_interval_s, 5.0))
            except Exception:  # still restarting: keep refusing
                continue
            log.warning("gate of %s open again after %.0f s", self.name,
                        time.monotonic() - self._closed_since)
            self._closed_since = None

    async def call(self, responses: AsyncIterator[T], *, stream: bool) -> AsyncIterator[T]:
        """``responses`` (one call) with every wait bounded; failures become
        ``unavailable`` and close the gate when they mean the replica is gone."""
        self.check()
        first_bound = self.stall_timeout_s if stream else self.answer_timeout_s
        bound = first_bound
        try:
            while True:
                try:
                    item = await asyncio.wait_for(anext(responses), bound)
                except StopAsyncIteration:
                    return
                yield item
                bound = self.stall_timeout_s
        except asyncio.TimeoutError:
            self.close(f"no response within {bound:.0f} s")
            raise self.unavailable(
                f"{self.name} did not respond within {bound:.0f} s (its replica may be "
                "restarting or overloaded); retry later", retry_after=self.retry_after_s) from None
        except (LlamaRagError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            if not self._is_replica_failure(exc):
                raise
            self.close(f"{type(exc).__name__}: {exc}")
            raise self.unavailable(
                f"{self.name} stopped while answering (its replica is restarting); "
                "retry later", retry_after=self.retry_after_s) from exc
        finally:
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # the stream is already broken: nothing to release
                    pass

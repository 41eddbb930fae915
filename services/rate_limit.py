"""The per-key rate limit of the whole app: token buckets in one small Serve deployment.

Buckets kept in each API replica would let a key through N times with N replicas, so
every replica asks this one deployment (``RateLimiter``, a single replica on no CPU).
``KeyBuckets`` is the Ray-free part, also the replica's own fallback: when the shared
limiter cannot answer in ``SHARED_TIMEOUT_S`` (being restarted), the replica limits
alone for that request and logs it, rather than failing or waving the request through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

DEPLOYMENT = "RateLimiter"
MAX_BUCKETS = 100_000  # forget idle clients beyond this many
SHARED_TIMEOUT_S = 2.0

SharedTake = Callable[[str], Awaitable[float]]


class TokenBucket:
    """``burst`` requests at once, refilled at ``per_minute`` / 60 per second."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class KeyBuckets:
    """One bucket per key digest."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.per_minute, self.burst = per_minute, burst
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, client: str) -> float:
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self.buckets.clear()
            bucket = self.buckets[client] = TokenBucket(self.per_minute, self.burst)
        return bucket.take()


def rate_limiter_deployment(per_minute: int, burst: int):
    """``KeyBuckets`` as the bound ``RateLimiter`` deployment every API replica asks: one
    replica, no CPU reserved (a dict lookup a request)."""
    from ray import serve

    return serve.deployment(KeyBuckets, name=DEPLOYMENT, num_replicas=1,
                            max_ongoing_requests=10_000,
                            ray_actor_options={"num_cpus": 0}).bind(per_minute, burst)


def serve_shared_take() -> SharedTake | None:
    """``take`` on the app's ``RateLimiter`` when running in a Serve replica, else None."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        app = serve.get_replica_context().app_name
    except RayServeException:
        return None
    handle = serve.get_deployment_handle(DEPLOYMENT, app_name=app)
    return lambda client: handle.take.remote(client)


class SharedLimit:
    """What a replica's key check calls: the shared buckets, the local ones as fallback."""

    def __init__(self, per_minute: int, burst: int,
                 shared: Callable[[], SharedTake | None] = serve_shared_take) -> None:
        self.local = KeyBuckets(per_minute, burst)
        self._find_shared, self._shared = shared, None
        self._looked = False

    async def take(self, client: str) -> float:
        if not self._looked:
            self._looked = True
            try:
                self._shared = self._find_shared()
            except Exception as exc:  # no limiter in this app (e.g. an older config)
                log.warning("no shared rate limiter (%s); limiting per replica", exc)
        if self._shared is None:
            return self.local.take(client)
        try:
            return await asyncio.wait_for(self._shared(client), SHARED_TIMEOUT_S)
        except Exception as exc:  # the limiter is being replaced: limit here meanwhile
            log.warning("shared rate limiter did not answer (%s); limiting per replica",
                        type(exc).__name__)
            return self.local.take(client)

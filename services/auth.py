"""API keys and a per-key rate limit, as ASGI middleware in front of every route.

Keys are compared as SHA-256 digests, so the replica never holds (or logs) a key
itself. The limit is a token bucket per key shared by every API replica
(services.rate_limit). Without configured keys there is
neither auth nor a limit (a local, loopback-only set-up); ``/healthz`` is always
open, so probes need no key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Awaitable, Callable

from llama_rag.config import parse_api_key
from llama_rag.errors import AuthError, ForbiddenError, LlamaRagError, RateLimitedError
from services.errors import send_error
from services.rate_limit import SharedLimit, serve_shared_take

OPEN_PATHS = frozenset({"/healthz", "/"})  # probes and the page itself (it holds no data)
OPEN_PREFIX = "/ui/"  # the page's CSS and JavaScript


SCOPE_STATE = "collections"  # request.state.collections: the key's allowed collections or None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_digests(entries: list[str]) -> dict[str, frozenset[str] | None]:
    """Digest -> allowed collections, from configured key entries."""
    return {digest(key): scope for key, scope in map(parse_api_key, entries)}


def is_open_path(path: str) -> bool:
    """Paths every client may use without a key (and that admission control never holds)."""
    return path in OPEN_PATHS or (path.startswith(OPEN_PREFIX) and ".." not in path)


class ApiKeyGuard:
    """401/403/429 before any route runs; a key limited to some collections has them
    put in ``request.state.collections`` for the routes to enforce."""

    def __init__(self, app: Callable[..., Awaitable[None]],
                 digests: dict[str, frozenset[str] | None], per_minute: int, burst: int,
                 shared=serve_shared_take) -> None:
        self.app, self.digests = app, dict(digests)
        self.per_minute = per_minute
        self.limit = SharedLimit(per_minute, burst, shared) if per_minute else None

    def _identify(self, scope: dict) -> str:
        """The caller's key digest; ``AuthError``/``ForbiddenError`` when there is none."""
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("missing API key: send 'Authorization: Bearer KEY'")
        given = digest(key.strip())
        for known in self.digests:
            if hmac.compare_digest(given, known):
                return known
        raise ForbiddenError("the API key is not valid")

    async def _limit(self, client: str) -> None:
        """``RateLimitedError`` once the key's bucket is empty."""
        if self.limit is None:
            return
        wait = await self.limit.take(client)
        if wait:
            raise RateLimitedError(f"rate limit of {self.per_minute} requests per minute "
                                   "exceeded", retry_after=wait + 0.5)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not self.digests or is_open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            client = self._identify(scope)
            scope.setdefault("state", {})[SCOPE_STATE] = self.digests[client]
            await self._limit(client)
        except LlamaRagError as exc:  # middleware runs outside FastAPI's handlers
            challenge = [(b"www-authenticate", b"Bearer")] if type(exc) is AuthError else []
            await send_error(send, exc, challenge)
            return
        await self.app(scope, receive, send)

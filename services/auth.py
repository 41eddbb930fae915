"""Who is calling: API keys or identity-provider JWTs, and a per-caller rate limit, as
ASGI middleware in front of every route.

Keys are compared as SHA-256 digests, so the replica never holds (or logs) a key
itself; a bearer JWT (``access.jwt``) is checked by services.tokens. The caller's
``Access`` (collections and document groups) is put in ``request.state.access`` for
the routes to pass to retrieval. The limit is a token bucket per caller shared by
every API replica (services.rate_limit). With neither keys nor a token issuer there is
neither auth nor a limit (a local, loopback-only set-up); ``/healthz`` is always
open, so probes need no key.
"""

from __future__ import annotations

import hmac
from typing import Awaitable, Callable

from llama_rag.config import parse_api_key
from llama_rag.errors import AuthError, ForbiddenError, LlamaRagError, RateLimitedError
from llama_rag.protocol import Access
from services.errors import send_error
from services.rate_limit import SharedLimit, serve_shared_take
from services.tokens import TokenVerifier, digest, looks_like_jwt, subject_of_key

OPEN_PATHS = frozenset({"/healthz", "/"})  # probes and the page itself (it holds no data)
OPEN_PREFIX = "/ui/"  # the page's CSS and JavaScript

ACCESS_STATE = "access"  # request.state.access: the caller's Access, or absent (no auth)


def key_digests(entries: list[str]) -> dict[str, Access]:
    """Digest -> what the key may read, from configured key entries."""
    found = {}
    for entry in map(parse_api_key, entries):
        hexd = digest(entry.key)
        found[hexd] = Access(subject=subject_of_key(hexd), groups=entry.groups,
                             collections=entry.collections)
    return found


def is_open_path(path: str) -> bool:
    """Paths every client may use without a key (and that admission control never holds)."""
    return path in OPEN_PATHS or (path.startswith(OPEN_PREFIX) and ".." not in path)


def access_of(request) -> Access | None:
    """The caller's Access as the guard set it (None: this server has no auth)."""
    return getattr(request.state, ACCESS_STATE, None)


class ApiKeyGuard:
    """401/403/429 before any route runs; the caller's ``Access`` goes to the routes."""

    def __init__(self, app: Callable[..., Awaitable[None]], digests: dict[str, Access],
                 per_minute: int, burst: int, shared=serve_shared_take,
                 tokens: TokenVerifier | None = None) -> None:
        self.app, self.digests, self.tokens = app, dict(digests), tokens
        self.per_minute = per_minute
        self.limit = SharedLimit(per_minute, burst, shared) if per_minute else None

    def _identify(self, scope: dict) -> Access:
        """The caller; ``AuthError``/``ForbiddenError`` when there is none."""
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthError("missing credentials: send 'Authorization: Bearer KEY' (an API key "
                            "or an identity provider's token)")
        if self.tokens is not None and looks_like_jwt(key):
            return self.tokens.verify(key)
        given = digest(key)
        for known, access in self.digests.items():
            if hmac.compare_digest(given, known):
                return access
        raise ForbiddenError("the API key is not valid")

    async def _limit(self, client: str) -> None:
        """``RateLimitedError`` once the caller's bucket is empty."""
        if self.limit is None:
            return
        wait = await self.limit.take(client)
        if wait:
            raise RateLimitedError(f"rate limit of {self.per_minute} requests per minute "
                                   "exceeded", retry_after=wait + 0.5)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        enabled = self.digests or self.tokens is not None
        if scope["type"] != "http" or not enabled or is_open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            access = self._identify(scope)
            scope.setdefault("state", {})[ACCESS_STATE] = access
            await self._limit(access.subject)
        except LlamaRagError as exc:  # middleware runs outside FastAPI's handlers
            challenge = [(b"www-authenticate", b"Bearer")] if type(exc) is AuthError else []
            await send_error(send, exc, challenge)
            return
        await self.app(scope, receive, send)

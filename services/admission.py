"""Admission control in the API replica: our own bound on running and waiting requests.

Serve's proxy can shed load too (``max_queued_requests``), but it answers with a
plain-text body that never reaches our error path. So the API replica admits
``serve.max_running_requests`` requests at once, lets ``serve.max_queued_requests``
more wait for a slot, and answers the rest at once with our JSON 503 and
``Retry-After``. Serve's own limits sit above these (services.app) as a backstop.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from llama_rag.errors import OverloadedError
from services.auth import is_open_path
from services.errors import send_error


class AdmissionControl:
    """ASGI middleware: ``running`` requests at once, ``queued`` waiting, the rest 503."""

    def __init__(self, app: Callable[..., Awaitable[None]], running: int, queued: int,
                 retry_after_s: float) -> None:
        self.app, self.running, self.queued = app, running, queued
        self.retry_after_s = retry_after_s
        self.active = 0
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None  # made in the serving event loop

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or is_open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.running)
        if self.active >= self.running and self.waiting >= self.queued:
            await send_error(send, OverloadedError(
                f"the server is at capacity ({self.running} requests running, {self.queued} "
                "waiting); retry later", retry_after=self.retry_after_s))
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            self._slots.release()

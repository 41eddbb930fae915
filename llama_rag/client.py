"""A small HTTP client for the llama-rag API (stdlib only, so the CLI needs nothing more).

Errors come back as the API's ``{"error": {...}}`` bodies; they are raised as
``ApiError`` carrying the status and message, never as a traceback.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

from llama_rag import sse
from llama_rag.errors import LlamaRagError

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_WAIT_S = 30.0
API_KEY_ENV = "LLAMA_RAG_API_KEY"


class ApiError(LlamaRagError):
    exit_code = 1

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.http_status = status


def _seconds(value: str | None) -> float | None:
    """A Retry-After given in seconds (ours always is), else None."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Client:
    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout: float = 600, retries: int = 0) -> None:
        """``retries``: how often a 429 or 503 with ``Retry-After`` is waited out and sent
        again (bulk callers such as `llama-rag eval`; an interactive ask fails at once)."""
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.retries = retries

    def _request(self, path: str, body: dict[str, Any]):
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), headers)
        for attempt in range(self.retries + 1):
            try:
                return urllib.request.urlopen(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                wait = _seconds(exc.headers.get("retry-after")) if exc.code in (429, 503) \
                    else None
                if wait is None or attempt == self.retries:
                    self._raise(path, exc)
                exc.close()
                time.sleep(min(wait, MAX_RETRY_WAIT_S))
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ApiError(f"cannot reach {self.url}: {reason} (is `llama-rag serve` "
                               "running?)", status=0) from None

    def _raise(self, path: str, exc: urllib.error.HTTPError):
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ApiError(f"{self.url}{path}: HTTP {exc.code}: {message}", status=exc.code) from None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._request(path, body) as resp:
            return json.loads(resp.read())

    def events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs of a server-sent event stream."""
        with self._request(path, {**body, "stream": True}) as resp:
            yield from sse.events(raw.decode("utf-8") for raw in resp)

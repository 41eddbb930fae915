"""The one error path of the API: one body, one builder, our error types mapped once.

Every 4xx/5xx the API sends is ``ErrorBody``: ``{"error": {"type", "message", "param",
"code"}}``, built by ``error_body`` alone. Our own errors (``llama_rag.errors``) are raised
wherever they happen and become responses in one place: ``error_response`` (the FastAPI
handler) or ``send_error`` (ASGI middleware in front of the routes, such as the API-key
check). Ray's LLM ingress answers in its own shapes (FastAPI's ``{"detail": ...}``,
``"Message: ..., Internal exception: ray.llm._internal..."``), so ``OpenAIErrorBodies``
rewrites every error body once, at the outermost layer, keeping a ``type`` that is
already ours and deriving the others from the status code.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Iterable

from pydantic import BaseModel

from llama_rag.errors import LlamaRagError, error_types
from services.ray_compat import unwrap_llm_error

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 408: "timeout_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error"}


class ErrorDetail(BaseModel):
    type: str
    message: str
    param: str | None
    code: int


class ErrorBody(BaseModel):
    """Every 4xx/5xx body, declared in the OpenAPI schema so clients and schema checkers
    (schemathesis in tests/reliability) know the shape."""

    error: ErrorDetail


def error_body(status: int, message: str, *, type: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """The body of every error response (the only place one is built)."""
    kind = type or _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return ErrorBody(error=ErrorDetail(type=kind, message=message or f"HTTP {status}",
                                       param=param, code=status)).model_dump()


def error_headers(exc: LlamaRagError) -> dict[str, str]:
    retry_after = getattr(exc, "retry_after", None)
    return {} if retry_after is None else {"retry-after": str(max(1, round(retry_after)))}


def body_of(exc: LlamaRagError) -> dict[str, Any]:
    return error_body(exc.http_status, exc.message, type=exc.type, param=exc.param)


async def error_response(request: Any, exc: LlamaRagError):
    """FastAPI's handler for every ``LlamaRagError`` a route raises."""
    from fastapi.responses import JSONResponse

    return JSONResponse(body_of(exc), status_code=exc.http_status, headers=error_headers(exc))


async def send_error(send: Callable, exc: LlamaRagError,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """The same response from ASGI middleware (which runs outside FastAPI's handlers)."""
    body = json.dumps(body_of(exc)).encode()
    extra = [(k.encode(), v.encode()) for k, v in error_headers(exc).items()]
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": [*headers, *extra, (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def openai_error(status: int, body: bytes) -> dict[str, Any]:
    """The OpenAI-style body for an error response of ``status`` whose body was ``body``."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {"detail": body.decode("utf-8", "replace")}
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        raw, param = str(error.get("message", "")), error.get("param")
    else:
        detail = data.get("detail") if isinstance(data, dict) else data
        raw, param = (detail if isinstance(detail, str) else json.dumps(detail)), None
    message, named = unwrap_llm_error(raw)
    param = named or param
    if status >= 500 and status != 503:
        message = "internal error; the server log has the details"
    if not isinstance(param, str):
        param = None
    kind = error.get("type") if isinstance(error, dict) else None
    return error_body(status, message, param=param,
                      type=kind if kind in error_types() else None)


def validation_error(errors: list[dict]) -> dict[str, Any]:
    """Our body for a request FastAPI could not validate, naming the field in ``param``.

    Ray's handler put the rejected value in ``param`` and answered 500 when the body
    was not JSON (the raw bytes it echoed do not serialise)."""
    first = errors[0] if errors else {}
    where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        message, param = "the request body is not valid JSON", None
    elif not where:
        message = ("the request body must be a JSON object (Content-Type: application/json): "
                   + str(first.get("msg", "invalid request")))
        param = None
    else:
        param = ".".join(where)
        message = f"{param}: {first.get('msg', 'invalid value')}"
    return error_body(400, message, param=param)


ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class OpenAIErrorBodies:
    """ASGI middleware: rewrites JSON error bodies (non-streaming) with ``openai_error``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        parts: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.update(message)
                return
            if held and message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = json.dumps(openai_error(held["status"], b"".join(parts))).encode()
                    headers = [(k, v) for k, v in held.get("headers", [])
                               if k.lower() not in (b"content-length", b"content-type")]
                    headers += [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]
                    await send({**held, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)

"""Grounded answers behind the OpenAI chat API: the ``rag`` model ids.

Any OpenAI client or chat UI picks ``model="rag"`` (``qa.chat_model_id``; ``rag:<collection>``
for a named collection) and gets what /v1/ask gives: retrieval on every turn (the
standalone query of qa.conversation), the same prompt, refusal and citations.
The answer text carries the ``[n]`` markers; the extension fields ``citations``,
``answerable``, ``citation_mode``, ``index_version``, ``query`` and ``passage_scorer``
ride on the completion and, when streaming, on the final chunk, so plain clients
still work.
System messages are ignored: the grounded prompt brings its own instructions.

Pure mapping between the OpenAI shapes and ours; services.api runs it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator

from pydantic import ValidationError

from llama_rag.config import DEFAULT_COLLECTION
from llama_rag.errors import InvalidInputError
from llama_rag.protocol import AskRequest, AskResponse, Turn

EXTENSION = ("citations", "answerable", "citation_mode", "index_version", "query", "passage_scorer")


def rag_collection(model: str | None, rag_id: str) -> str | None:
    """None: not a rag model id; else the collection it names ("" for the default one)."""
    if not rag_id or not model:
        return None
    if model == rag_id:
        return ""
    prefix = f"{rag_id}:"
    return model[len(prefix):] or None if model.startswith(prefix) else None


def model_ids(rag_id: str, collections: list[str]) -> list[str]:
    """The rag ids /v1/models lists: the default collection's, then one per named one."""
    if not rag_id:
        return []
    return [rag_id] + [f"{rag_id}:{c}" for c in sorted(collections) if c != DEFAULT_COLLECTION]


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def ask_request(body: Any, collection: str) -> AskRequest:
    """The /v1/ask request of a chat completion: the last user message is the question,
    the user and assistant messages before it the history."""
    messages = [m for m in body.messages if m.get("role") in ("user", "assistant")]
    if not messages or messages[-1].get("role") != "user":
        raise InvalidInputError("the last message must be the user's question", param="messages")
    try:
        return AskRequest(
            question=_text(messages[-1].get("content")),
            history=[Turn(role=m["role"], content=_text(m.get("content"))) for m in messages[:-1]],
            collection=collection or None, stream=bool(body.stream),
            max_tokens=getattr(body, "max_completion_tokens", None) or body.max_tokens,
            temperature=body.temperature,
            # extension fields, as /v1/ask takes them (the OpenAI request allows extras)
            filters=(body.model_extra or {}).get("filters"),
            answer_mode=(body.model_extra or {}).get("answer_mode"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"{where}: {first['msg']}", param="messages") from None


def _extension(done: AskResponse) -> dict[str, Any]:
    data = done.model_dump(include=set(EXTENSION))
    return {**data, "citations": [c.model_dump() for c in done.citations]}


def completion(done: AskResponse, model: str) -> dict[str, Any]:
    """A ``chat.completion`` object carrying the answer and the extension fields."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": done.answer}}],
            "usage": done.usage.model_dump(), **_extension(done)}


async def chunks(events: AsyncIterator[tuple[str, dict]], model: str) -> AsyncIterator[str]:
    """/v1/ask's events as ``chat.completion.chunk`` SSE lines: the tokens as deltas, then
    a final chunk with ``finish_reason`` and the extension fields (its ``answer`` is the
    text with the citation markers, which attribution may add after the tokens)."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def line(choices: list, **extra: Any) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    yield line([{"index": 0, "delta": {"role": "assistant", "content": ""},
                 "finish_reason": None}])
    async for name, data in events:
        if name == "token":
            yield line([{"index": 0, "delta": {"content": data["text"]}, "finish_reason": None}])
        elif name == "done":
            done = AskResponse.model_validate(data)
            yield line([{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       usage=done.usage.model_dump(), answer=done.answer, **_extension(done))
        elif name == "error":
            yield f"data: {json.dumps(data)}\n\n"
    yield "data: [DONE]\n\n"


def card(model_id: str, base: Any, collection: str) -> dict[str, Any]:
    """The /v1/models entry of a rag id (fields of Ray's ModelCard)."""
    return {"id": model_id, "object": "model", "owned_by": "llama-rag", "permission": [],
            "metadata": {"rag": True, "collection": collection or DEFAULT_COLLECTION,
                         "answers_with": base}}

"""Server-sent events: the one writer and the one parser, for the API and its clients.

``/v1/ask`` streams ``event: NAME`` + ``data: JSON`` frames (``format_event``); the
client and the CLI read them back with ``events``. The LLM deployment streams
OpenAI chunks as ``data: JSON`` text (vLLM's format), one or several per packet
when Ray batches them; ``data_objects`` turns any such packet into its JSON objects.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

DONE = "[DONE]"


def format_event(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) for each frame of an SSE stream given line by line."""
    event = "message"
    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and line[6:] != DONE:
            yield event, json.loads(line[6:])
            event = "message"


def data_objects(packet: Any) -> list[dict[str, Any]]:
    """The JSON objects in one streamed packet: SSE text, a dict, a pydantic model, or a
    list of those (Ray Serve LLM batches chunks)."""
    items = packet if isinstance(packet, list) else [packet]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            out += [data for _, data in events(item.splitlines())]
        elif isinstance(item, dict):
            out.append(item)
        elif hasattr(item, "model_dump"):
            out.append(item.model_dump(mode="json"))
        else:
            raise TypeError(f"unexpected streamed item {type(item).__name__}")
    return out

"""Admission control through the API's real middleware stack: N running, M waiting,
the rest refused at once with our JSON 503 and Retry-After."""

from __future__ import annotations

import asyncio

import httpx

from llama_rag.config import Settings
from services.api import fastapi_app


def test_beyond_running_and_waiting_requests_get_our_503_at_once():
    app = fastapi_app(Settings(serve={"max_running_requests": 2, "max_queued_requests": 1,
                                      "retry_after_s": 3}))
    release = asyncio.Event()

    @app.get("/slow")
    async def slow():
        await release.wait()
        return {"ok": True}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            tasks = [asyncio.create_task(http.get("/slow")) for _ in range(5)]
            await asyncio.sleep(0.3)
            refused = [t for t in tasks if t.done()]
            health = await http.get("/ui/app.css")  # open paths are never held
            release.set()
            return refused, await asyncio.gather(*tasks), health

    refused, responses, health = asyncio.run(scenario())
    assert len(refused) == 2 and health.status_code == 200
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 503, 503]
    body = next(r for r in responses if r.status_code == 503)
    assert body.json()["error"]["type"] == "overloaded_error"
    assert body.headers["retry-after"] == "3"

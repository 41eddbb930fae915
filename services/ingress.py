"""Ray's OpenAI ingress plus the /healthz and /readyz probes (services.api builds on it).

Built on Ray's internal ingress helpers (pinned with ray 2.60.*): they give the
OpenAI routes, streaming and model routing.
"""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse
from ray.llm._internal.serve.core.ingress.ingress import (
    DEFAULT_ENDPOINTS,
    OpenAiIngress,
)

READY_TIMEOUT_S = 10


class LlamaRagIngress(OpenAiIngress):
    async def healthz(self) -> dict:
        """The API process is alive (it does not wait for any engine)."""
        return {"status": "ok"}

    async def readyz(self):
        """Every LLM deployment's engine answers its health check."""
        not_ready = []
        for model_id, handle in self._default_serve_handles.items():
            try:
                await asyncio.wait_for(handle.check_health.remote(), READY_TIMEOUT_S)
            except Exception:  # starting, dead or unreachable: all mean "not ready"
                not_ready.append(model_id)
        if not_ready:
            return JSONResponse({"detail": f"model(s) not ready: {', '.join(not_ready)}"},
                                status_code=503, headers={"retry-after": "5"})
        return {"status": "ready", "models": sorted(self._default_serve_handles)}


ENDPOINTS = {**DEFAULT_ENDPOINTS,
             "healthz": lambda app: app.get("/healthz"),
             "readyz": lambda app: app.get("/readyz")}

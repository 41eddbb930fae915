"""Ray's OpenAI ingress plus the /healthz and /readyz probes (services.api builds on it).

Ray Serve LLM's ingress gives the OpenAI routes, streaming and model routing; what we
use of it that is not public is named in services.ray_compat.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from llama_rag.adapters import NAME as ADAPTER_NAME
from llama_rag.adapters import AdapterStore
from llama_rag.config import AdapterSettings, ServeSettings
from llama_rag.errors import InvalidInputError, LlamaRagError, ModelUnavailableError, NotFoundError
from services.deployments import replica_gone
from services.errors import ErrorBody
from services.ray_compat import ModelCard, ModelList, OpenAiIngress
from services.call_gate import CallGate

READY_TIMEOUT_S = 10


class LlamaRagIngress(OpenAiIngress):
    def __init__(self, llm_deployments, model_cards, lora_paths, serve: ServeSettings,
                 adapters: AdapterSettings | None = None):
        super().__init__(llm_deployments=llm_deployments, model_cards=model_cards,
                         lora_paths=lora_paths)
        self.serve_settings = serve
        self.adapters = AdapterStore.of(adapters) if adapters is not None and lora_paths else None
        self.llm_gate = CallGate(
            self._probe_llms, stall_timeout_s=serve.llm_stall_timeout_s,
            answer_timeout_s=serve.llm_answer_timeout_s,
            probe_interval_s=serve.llm_probe_interval_s,
            retry_after_s=max(serve.retry_after_s, serve.llm_probe_interval_s),
            is_replica_failure=replica_gone)

    async def _get_response(self, *, body, call_method: str, raw_request=None):
        """Every LLM call (OpenAI routes and /v1/ask) through the gate: bounded waits, and
        503 at once while the LLM deployment has no replica that answers."""
        responses = super()._get_response(body=with_token_bounds(body, self.serve_settings),
                                          call_method=call_method, raw_request=raw_request)
        async for item in self.llm_gate.call(responses, stream=bool(getattr(body, "stream",
                                                                             False))):
            yield item

    async def _probe_llms(self) -> None:
        for handle in self._default_serve_handles.values():
            await handle.check_health.remote()

    async def _get_model_id(self, model: str | None) -> str:
        """Ray routes ``base:adapter`` to a LoRA adapter loaded from a path built from the
        name; refuse it when no adapters are configured (Ray answered 500) and refuse
        adapter names that are not plain names (``smollm2:../../etc``)."""
        model_id = await super()._get_model_id(model)
        base, _, adapter = model_id.partition(":")
        if not adapter:
            return model_id
        if base not in self._lora_paths:
            raise HTTPException(400, f"model {model_id!r} names a LoRA adapter, but {base!r} "
                                     "serves no LoRA adapters; use the model id alone")
        if not ADAPTER_NAME.fullmatch(adapter) or ".." in adapter:  # a name, never a path
            raise HTTPException(400, f"LoRA adapter names are letters, digits, '.', '_' and "
                                     f"'-', not paths: got {adapter!r}")
        if await self.model(model_id) is None:
            raise NotFoundError(f"no LoRA adapter {adapter!r} for model {base!r} in the "
                                f"adapter registry (llama-rag adapters list)", param="model")
        return model_id

    async def model(self, model_id: str) -> ModelCard | None:
        """The base models' cards, and ``<base>:<NAME>`` for each LoRA adapter in the
        registry (Ray's own lookup reads a cloud bucket)."""
        if model_id in self._model_cards or self.adapters is None:
            return self._model_cards.get(model_id)
        base, _, name = model_id.partition(":")
        if base not in self._model_cards or base not in self._lora_paths:
            return None
        try:
            manifest = await asyncio.to_thread(self.adapters.manifest, name)
        except (LlamaRagError, OSError):
            return None
        if manifest.method != "lora":
            return None
        card = self._model_cards[base]
        return ModelCard(id=model_id, object="model", owned_by=card.owned_by,
                         permission=list(card.permission),
                         metadata={**card.metadata, "base_model_id": base,
                                   "adapter_version": manifest.version,
                                   "adapter_task": manifest.task,
                                   "adapter_labels": manifest.labels})

    async def models(self) -> ModelList:
        cards = [await self.model(m) for m in self._model_cards]
        if self.adapters is not None:
            names = await asyncio.to_thread(self.adapters.names)
            for base in self._lora_paths:
                cards += [await self.model(f"{base}:{n}") for n in names]
        return ModelList(data=[c for c in cards if c is not None])

    async def healthz(self) -> dict:
        """The API process is alive (it does not wait for any engine)."""
        return {"status": "ok"}

    async def readyz(self):
        """Every LLM deployment's engine answers its health check."""
        not_ready = []
        for model_id, handle in self._default_serve_handles.items():
            if not self.llm_gate.is_open:
                not_ready.append(model_id)
                continue
            try:
                await asyncio.wait_for(handle.check_health.remote(), READY_TIMEOUT_S)
            except Exception:  # starting, dead or unreachable: all mean "not ready"
                not_ready.append(model_id)
        if not_ready:
            raise ModelUnavailableError(f"model(s) not ready: {', '.join(not_ready)}",
                                        retry_after=5)
        return {"status": "ready", "models": sorted(self._default_serve_handles)}


def with_token_bounds(body, serve: ServeSettings):
    """``body`` with ``max_tokens`` set where an OpenAI request sets none (vLLM would generate
    until the context ends), refused above ``serve.max_tokens_limit``."""
    if not hasattr(body, "max_tokens"):
        return body
    asked = body.max_tokens
    if asked is None:  # 0 stays 0: vLLM refuses it with a 400 naming max_tokens
        asked = getattr(body, "max_completion_tokens", None)
    if asked is None:
        return body.model_copy(update={"max_tokens": serve.default_max_tokens})
    check_max_tokens(asked, serve)
    return body


def check_max_tokens(asked: int, serve: ServeSettings) -> None:
    """400 naming ``max_tokens`` above ``serve.max_tokens_limit`` (every route's ceiling)."""
    if asked > serve.max_tokens_limit:
        raise InvalidInputError(f"max_tokens is {asked}; this server allows at most "
                                f"{serve.max_tokens_limit}", param="max_tokens")


_WHY = {400: "Invalid request (the message and `param` name the problem).",
        401: "Missing API key.", 403: "API key not valid (or not for that collection).",
        404: "Unknown model or collection.", 413: "Input too long.",
        429: "Rate limit exceeded; see Retry-After.",
        503: "Overloaded, or nothing to serve yet; see Retry-After."}
GUARDED = (401, 403, 429)  # the key check runs before every route but /healthz and the page


def responses(*codes: int, stream: bool = False) -> dict:
    """OpenAPI ``responses`` for a route: its error codes and, for streaming routes,
    the server-sent-events content type beside JSON."""
    out: dict = {code: {"model": ErrorBody, "description": _WHY[code]}
                 for code in sorted({*codes, *GUARDED})}
    if stream:
        out[200] = {"content": {"text/event-stream": {}},
                    "description": "JSON, or server-sent events with `stream: true`."}
    return out


# Ray's OpenAI routes that serve a generative LLaMA model; its embeddings, score and
# transcription routes are left out (no such model is served, they could only fail).
ENDPOINTS = {
    "models": lambda app: app.get("/v1/models", response_model=ModelList,
                                  responses=responses()),
    "model_data": lambda app: app.get("/v1/models/{model:path}", response_model=ModelCard,
                                      responses=responses(404)),
    "completions": lambda app: app.post("/v1/completions",
                                        responses=responses(400, 404, 503, stream=True)),
    "chat": lambda app: app.post("/v1/chat/completions",
                                 responses=responses(400, 404, 503, stream=True)),
    "tokenize": lambda app: app.post("/tokenize", responses=responses(400, 404, 503)),
    "detokenize": lambda app: app.post("/detokenize", responses=responses(400, 404, 503)),
    "healthz": lambda app: app.get("/healthz"),
    "readyz": lambda app: app.get("/readyz", responses=responses(503)),
}

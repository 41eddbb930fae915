"""The API ingress: OpenAI routes (services.ingress) plus /v1/ask and /v1/search.

One FastAPI app per replica. The QA routes adapt qa.answerer to handles: the
retrieval deployment prepares the answer (or the fenced prompt), this replica calls
the LLM deployment through the same handle the OpenAI routes use, and the retrieval
deployment finishes it. Our errors (llama_rag.errors) become HTTP responses in one
handler; API keys and the per-key rate limit are checked by services.auth.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

from llama_rag.config import DEFAULT_COLLECTION, Settings
from llama_rag.pii import StreamMasker, mask_logs
from llama_rag.errors import (ForbiddenError, LlamaRagError, ModelUnavailableError,
                              RetrievalUnavailableError, UpstreamError)
from services.errors import validation_error
from services.ray_compat import (ChatCompletionRequest, ChatCompletionStreamResponse, ErrorResponse,
                                 ModelCard, ModelList)
from llama_rag import sse
from services.audit import AuditLog
from qa import grounding
from qa.answerer import Answerer, Generation, answer_mode, check_question
from services import chat, documents
from services.deployments import RetrieverClient
from services.ingress import ENDPOINTS, LlamaRagIngress, check_max_tokens, responses
from services.auth import access_of
from llama_rag.protocol import (Access, AskRequest, AskResponse, Collection, IndexSummary,
                                SearchRequest, SearchResponse, Usage)

log = logging.getLogger(__name__)

WEB = Path(__file__).with_name("web")  # the question page: plain HTML, CSS and JS


class LlamaRagApi(LlamaRagIngress):
    """Grounded QA on top of the OpenAI-compatible routes."""

    def __init__(self, llm_deployments, model_cards, lora_paths, retriever, settings: Settings,
                 rate_limiter=None):
        from llama_rag.telemetry import refusals, tokens_generated

        super().__init__(llm_deployments, model_cards, lora_paths, settings.serve,
                         settings.adapters)
        # bound so Serve deploys it; the key check (services.auth) finds it by name
        self.rate_limiter = rate_limiter
        self.retrieval = RetrieverClient(retriever, settings.serve)
        self.settings = settings
        self.refusals, self.tokens = refusals(), tokens_generated()
        self.audit = AuditLog(settings.access.audit_log, settings.privacy.mask_pii)
        if settings.privacy.mask_pii:
            mask_logs()

    async def search(self, body: SearchRequest, request: Request) -> SearchResponse:
        access = _check_collection(request, body.collection)
        found = await self.retrieval.call("search", body, access)
        self.audit.record("search", _request_id(request), access, index_version=found.version,
                          chunk_ids=[h.chunk_id for h in found.hits], collection=body.collection,
                          question=body.query)
        return found

    async def index_summary(self, request: Request, collection: Collection | None = None
                            ) -> IndexSummary:
        access = _check_collection(request, collection)
        summary = await self.retrieval.call("summary", collection, access)
        served = self.settings.serve.documents_dir is not None and not collection
        return summary.model_copy(update={"documents_served": served})

    async def model(self, model_id: str) -> ModelCard | None:
        """The LLM's cards and adapters (services.ingress), and the rag ids."""
        collection = chat.rag_collection(model_id, self.settings.qa.chat_model_id)
        if collection is None:
            return await super().model(model_id)
        if collection and collection not in await self.retrieval.call("collections"):
            return None
        return ModelCard(**chat.card(model_id, self.settings.llm.model_id, collection))

    async def models(self) -> ModelList:
        listed = await super().models()
        rag_id = self.settings.qa.chat_model_id
        rag = [ModelCard(**chat.card(i, self.settings.llm.model_id, chat.rag_collection(i, rag_id)))
               for i in chat.model_ids(rag_id, await self.retrieval.call("collections"))]
        return ModelList(data=rag + list(listed.data))

    async def page(self) -> HTMLResponse:
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"))

    async def document(self, source: str, request: Request) -> FileResponse:
        """A file of the indexed folder (serve.documents_dir), for a citation's link."""
        access = access_of(request)
        if access is not None and access.groups is not None:  # the index knows its labels
            await self.retrieval.call("check_source", source, access)
        return FileResponse(documents.resolve(self.settings, source, access))

    async def ask(self, body: AskRequest, request: Request):
        plan = await self._plan(body, request)
        if isinstance(plan, AskResponse):
            return _sse_response(_done_events(plan)) if body.stream else plan
        if body.stream:
            return _sse_response(self._generated_events(plan))
        return await self._generated(plan)

    async def chat(self, body: ChatCompletionRequest, request: Request):
        """OpenAI chat completions; the ``rag`` model ids (qa.chat_model_id, and
        ``rag:<collection>``) answer with retrieval, citations and refusals as /v1/ask
        does (services.chat), any other model id reaches the LLM as before."""
        collection = chat.rag_collection(body.model, self.settings.qa.chat_model_id)
        if collection is None:
            return await super().chat(body, request)
        ask = chat.ask_request(body, collection)
        plan = await self._plan(ask, request)
        if not ask.stream:
            done = plan if isinstance(plan, AskResponse) else await self._generated(plan)
            return JSONResponse(chat.completion(done, body.model))
        events = _done_events(plan) if isinstance(plan, AskResponse) \
            else self._generated_events(plan)
        return StreamingResponse(chat.chunks(events, body.model), media_type="text/event-stream")

    async def _plan(self, body: AskRequest, request: Request) -> "AskResponse | _Plan":
        """The checks this replica can make, then the answerer (qa.answerer, run by the
        retrieval deployment): the finished answer (a refusal, an extractive answer) or
        what to ask the LLM."""
        cfg = self.settings.qa
        check_question(body, cfg)
        access = _check_collection(request, body.collection)
        model = await self._get_model_id(body.model or self.settings.llm.model_id)  # 404 now
        mode = answer_mode(body, cfg)
        if mode == "generate":
            self.llm_gate.check()  # while the LLM is down: 503 now, before any retrieval work
        planned = await self.retrieval.call("prepare", body, mode, access)
        self._audit(request, access, body, planned)
        if isinstance(planned, AskResponse):
            if not planned.answerable:
                self.refusals.inc(tags={"reason": "no_relevant_chunks"})
            return planned
        check_max_tokens(planned.max_tokens, self.settings.serve)  # before a stream: a 400
        request_ = ChatCompletionRequest(
            model=model, messages=planned.messages, max_tokens=planned.max_tokens,
            temperature=planned.temperature, frequency_penalty=planned.frequency_penalty,
            stream=body.stream, stream_options={"include_usage": True} if body.stream else None)
        return _Plan(request_, planned)

    def _audit(self, request: Request, access: Access | None, body: AskRequest,
               planned: "AskResponse | Generation") -> None:
        """The audit line of an answer: the chunks it cites, or every chunk the model is
        given (a stream's sources event shows them all)."""
        if isinstance(planned, AskResponse):
            shown, version, answerable = planned.citations, planned.index_version, \
                planned.answerable
        else:
            shown, version, answerable = planned.hits, planned.found.version, None
        self.audit.record("ask", _request_id(request), access, index_version=version,
                          chunk_ids=[h.chunk_id for h in shown], collection=body.collection,
                          question=body.question, answerable=answerable)

    async def _generated(self, plan: "_Plan") -> AskResponse:
        started = time.perf_counter()
        try:
            response, *_ = [r async for r in self._get_response(body=plan.chat,
                                                                call_method="chat")]
        except LlamaRagError:
            raise
        except Exception as exc:  # the replica died or restarts: say so, retryably
            raise _model_unavailable(exc) from exc
        _raise_if_error(response)
        text = response.choices[0].message.content or ""
        return await self._finish(text, plan, Usage(**response.usage.model_dump(
            include={"prompt_tokens", "completion_tokens", "total_tokens"})),
            (time.perf_counter() - started) * 1000)

    async def _finish(self, text: str, plan: "_Plan", usage: Usage,
                      generate_ms: float) -> AskResponse:
        """The answerer's response to the LLM's text (refusal detection, its citations or
        attributed ones); uncited when the retriever cannot be reached for attribution."""
        if usage.completion_tokens:
            self.tokens.inc(usage.completion_tokens, tags={"route": "ask"})
        try:
            done = await self.retrieval.call("finish", text, plan.generation, usage, generate_ms)
        except RetrievalUnavailableError:  # keep the answer the LLM gave, uncited
            log.warning("answer left without attributed citations: retrieval unavailable")
            done = Answerer(None, self.settings).finish(text, plan.generation, usage,
                                                        generate_ms, attribute=False)
        if not done.answerable:
            self.refusals.inc(tags={"reason": "model_declined"})
        return done

    async def _generated_events(self, plan: "_Plan") -> AsyncIterator[tuple[str, dict]]:
        """(event, data): the sources first, then each token, then the answer with the
        citations used (or an in-band error once the stream has started)."""
        yield "sources", {"citations": [grounding.citation(n, h).model_dump()
                                        for n, h in enumerate(plan.generation.hits, start=1)]}
        started, parts, usage = time.perf_counter(), [], Usage()
        masker = StreamMasker() if self.settings.privacy.mask_pii else None
        try:
            async for packet in self._get_response(body=plan.chat, call_method="chat"):
                _raise_if_error(packet)
                for chunk in _chunks(packet):
                    if chunk.usage:
                        usage = Usage(**{k: getattr(chunk.usage, k) or 0
                                         for k in Usage.model_fields})
                    for choice in chunk.choices:
                        text = choice.delta.content
                        if text:
                            parts.append(text)
                            shown = masker.feed(text) if masker else text
                            if shown:
                                yield "token", {"text": shown}
        except Exception as exc:  # the stream has started: report in-band
            error = exc if isinstance(exc, LlamaRagError) else _model_unavailable(exc)
            yield "error", {"error": {"type": error.type, "message": error.message}}
            return
        if masker and (tail := masker.close()):
            yield "token", {"text": tail}
        done = await self._finish("".join(parts), plan, usage,
                                  (time.perf_counter() - started) * 1000)
        yield "done", done.model_dump()


@dataclass
class _Plan:
    """What /v1/ask sends the LLM, and what the answerer needs to finish the answer."""

    chat: ChatCompletionRequest
    generation: Generation


async def _done_events(done: AskResponse) -> AsyncIterator[tuple[str, dict]]:
    """A finished answer (refusal, extractive) as the events a streamed one sends."""
    yield "sources", {"citations": [c.model_dump() for c in done.citations]}
    yield "token", {"text": done.answer}
    yield "done", done.model_dump()


def _sse_response(events: AsyncIterator[tuple[str, dict]]) -> StreamingResponse:
    async def formatted() -> AsyncIterator[str]:
        async for name, data in events:
            yield sse.format_event(name, data)
    return StreamingResponse(formatted(), media_type="text/event-stream")


def _model_unavailable(exc: Exception) -> ModelUnavailableError:
    log.warning("the LLM deployment failed a request: %s: %s", type(exc).__name__, exc)
    return ModelUnavailableError("the language model stopped while answering (its replica "
                                 "may be restarting); retry in a few seconds")


def _request_id(request: Request) -> str:
    """Ray Serve's request id (its ``x-request-id``), or a new one."""
    import uuid

    return request.headers.get("x-request-id") or uuid.uuid4().hex


def _check_collection(request: Request, collection: str | None) -> Access | None:
    """The caller's Access (services.auth); 403 when its key is limited to other
    collections."""
    access = access_of(request)
    allowed = access.collections if access is not None else None
    name = collection or DEFAULT_COLLECTION
    if allowed is not None and name not in allowed:
        raise ForbiddenError(f"this API key may use collection(s) {', '.join(sorted(allowed))}, "
                             f"not {name!r}", param="collection")
    return access


def _raise_if_error(response: Any) -> None:
    """The LLM's refusal of the request (4xx) as it said it; its own failure (5xx: vLLM
    turns an engine that died mid-request into a 500 body) as a 503 to retry."""
    first = response[0] if isinstance(response, list) and response else response
    if not isinstance(first, ErrorResponse):
        return
    if int(first.error.code) >= 500:
        log.warning("the LLM failed a request: %s %s", first.error.code, first.error.message)
        raise ModelUnavailableError("the language model failed while answering; retry later")
    raise UpstreamError(first.error.message, status=first.error.code)


def _chunks(packet: Any) -> list[ChatCompletionStreamResponse]:
    """The typed chunks of one streamed packet (Ray may batch several per packet)."""
    return [ChatCompletionStreamResponse.model_validate(obj) for obj in sse.data_objects(packet)]


async def _validation_response(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(validation_error(exc.errors()), status_code=400)


API_ENDPOINTS = {**ENDPOINTS,
                 "ask": lambda app: app.post("/v1/ask", response_model=AskResponse,
                                             responses=responses(400, 404, 413, 503,
                                                                 stream=True)),
                 "search": lambda app: app.post("/v1/search", response_model=SearchResponse,
                                                responses=responses(400, 404, 413, 503)),
                 "index_summary": lambda app: app.get("/v1/index", response_model=IndexSummary,
                                                      responses=responses(400, 404, 503)),
                 "page": lambda app: app.get("/", include_in_schema=False),
                 "document": lambda app: app.get("/v1/files/{source:path}",
                                                 response_class=FileResponse,
                                                 responses=responses(404))}


def fastapi_app(settings: Settings):
    """The FastAPI app under our routes: Ray's middleware stack, our one error mapping,
    the page's static files, the API-key check, and the outermost error-body rewrite."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.staticfiles import StaticFiles
    from services.ray_compat import ingress_fastapi_app

    from services.admission import AdmissionControl
    from services.auth import ApiKeyGuard, key_digests
    from services.tokens import TokenVerifier
    from services.errors import OpenAIErrorBodies, error_response

    app = ingress_fastapi_app()  # Ray's middleware stack (request ids, metrics, its exception handling)
    app.add_exception_handler(LlamaRagError, error_response)  # the one mapping of our errors
    app.add_exception_handler(RequestValidationError, _validation_response)  # replaces Ray's
    app.mount("/ui", StaticFiles(directory=WEB), name="ui")
    app.add_middleware(AdmissionControl, running=settings.serve.max_running_requests,
                       queued=settings.serve.max_queued_requests,
                       retry_after_s=settings.serve.retry_after_s)  # inside the key check
    app.add_middleware(ApiKeyGuard, digests=key_digests([k.get_secret_value()
                                                         for k in settings.serve.api_keys]),
                       per_minute=settings.serve.rate_limit_per_minute,
                       burst=settings.serve.rate_limit_burst,
                       tokens=TokenVerifier(settings.access.jwt) if settings.access.jwt else None)
    app.add_middleware(OpenAIErrorBodies)  # added last, so outermost: sees every response
    return app


def api_class(settings: Settings):
    """The Serve ingress class on ``fastapi_app``."""
    from services.ray_compat import make_fastapi_ingress

    return make_fastapi_ingress(LlamaRagApi, endpoint_map=API_ENDPOINTS,
                                app=fastapi_app(settings))

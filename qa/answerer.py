"""The one answering path: a question (+ history) and a retriever in, an answer with
citations out.

/v1/ask and the ``rag`` chat model (the retrieval deployment runs it next to its
index, services.retriever), `llama-rag eval --index-dir` and the index gate all call
``Answerer``; only the LLM call itself stays with the caller, between ``prepare``
(checks, retrieval, refusal, the extractive answer or the prompt) and ``finish``
(refusal detection, citations, attribution). Pure Python, no Ray: the retriever is
an interface (indexing.retriever.RetrieverCore in-process).
"""

from __future__ import annotations

import time
from typing import Protocol, Sequence

from pydantic import BaseModel

from indexing.text import sentence_spans
from llama_rag.config import AnswerMode, QASettings, Settings
from llama_rag.errors import QuestionTooLongError
from llama_rag.pii import mask
from llama_rag.protocol import (AskRequest, AskResponse, Hit, SearchRequest, SearchResponse,
                                Timings, Turn, Usage)
from qa import api_reference, extractive, grounding, prompts
from qa.conversation import answered, standalone


class Retriever(Protocol):
    """What answering needs of the retriever (indexing.retriever.RetrieverCore)."""

    def search(self, request: SearchRequest) -> SearchResponse: ...

    def is_api_reference(self, collection: str | None = None) -> bool: ...

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]: ...

    def hit_similarity(self, sentences: list[str], hits: list[Hit],
                       collection: str | None = None) -> list[list[float]]: ...

    def entries(self, name: str, collection: str | None = None, filters=None) -> list[Hit]: ...

    def task_entries(self, pages: list[str], words: list[str],
                     collection: str | None = None) -> list[Hit]: ...


class Generation(BaseModel):
    """What to ask the LLM for a generated answer, and what ``finish`` needs after it."""

    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    frequency_penalty: float
    hits: list[Hit]  # the quoted ones: only they can be cited
    found: SearchResponse
    query: str | None  # the standalone query, when it is not the question


def answer_mode(body: AskRequest, cfg: QASettings) -> AnswerMode:
    """The request's mode; a request that names a model (an adapter) wants that model's
    answer, so it generates unless it asks for extractive."""
    return body.answer_mode or ("generate" if body.model else cfg.answer_mode)


def max_tokens(body: AskRequest, cfg: QASettings) -> int:
    return body.max_tokens or cfg.max_tokens


def check_question(body: AskRequest, cfg: QASettings) -> None:
    if len(body.question) > cfg.max_question_chars:
        raise QuestionTooLongError(
            f"question is {len(body.question)} characters; the limit is "
            f"{cfg.max_question_chars}", param="question")


def resolve_answer_mode(settings: Settings) -> Settings:
    """``settings`` with ``qa.answer_mode`` ``auto`` decided by the served model's size:
    extractive under ``qa.extractive_below_params`` (an unknown size generates)."""
    from llama_rag.model_files import parameter_count, resolve_llm

    if settings.qa.answer_mode != "auto":
        return settings
    count = parameter_count(resolve_llm(settings))
    mode = "extractive" if count is not None and count < settings.qa.extractive_below_params \
        else "generate"
    return settings.model_copy(update={"qa": settings.qa.model_copy(update={"answer_mode": mode})})


class Answerer:
    """Answers questions over one retriever with the ``qa`` settings."""

    def __init__(self, retriever: Retriever, settings: Settings,
                 scorer: extractive.PassageScorer | None = None) -> None:
        self.retriever = retriever
        self.settings = settings
        self.scorer = scorer  # the corpus's tuned passage scorer (`llama-rag tune`), if any

    def prepare(self, body: AskRequest, mode: AnswerMode | None = None
                ) -> AskResponse | Generation:
        """The finished answer (a refusal, an extractive answer) or the prompt to generate
        it from (``mode`` default: ``answer_mode``)."""
        cfg = self.settings.qa
        check_question(body, cfg)
        mode = mode or answer_mode(body, cfg)
        query = standalone(body.question, body.history)
        found = self.retriever.search(SearchRequest(
            query=query, k=body.k or cfg.k, filters=body.filters, collection=body.collection,
            mode=body.mode))
        hits = grounding.relevant(found.hits, cfg, query)
        shown = query if query != body.question else None
        if not hits:
            return refusal(found, shown)
        if mode == "extractive":
            return self._extractive(body, query, hits, found, shown)
        tokens = max_tokens(body, cfg)
        budget = prompts.context_budget(self.settings.llm.max_model_len, tokens,
                                        body.question, body.history)
        hits = hits[: len(prompts.quoted(hits, cfg, budget))]  # cite only what the model saw
        return Generation(
            messages=prompts.build_messages(body.question, hits, cfg, budget, body.history),
            max_tokens=tokens,
            temperature=cfg.temperature if body.temperature is None else body.temperature,
            frequency_penalty=cfg.frequency_penalty, hits=hits, found=found, query=shown)

    def ask(self, question: str, history: Sequence[Turn] = (), collection: str | None = None
            ) -> AskResponse:
        """An extractive answer (no LLM): what the gate and `eval --index-dir` score."""
        done = self.prepare(AskRequest(question=question, history=list(history),
                                       collection=collection), "extractive")
        assert isinstance(done, AskResponse)
        return done

    def _extractive(self, body: AskRequest, query: str, hits: list[Hit], found: SearchResponse,
                    shown: str | None) -> AskResponse:
        """The answering sentence of the hits, verbatim with its [n] (no LLM call); a
        follow-up is answered as its standalone query. API reference pages get their
        profile first (qa.api_reference), every corpus the general engine."""
        started = time.perf_counter()
        api = self.retriever.is_api_reference(body.collection)
        quote, hits = select(answered(body.question, body.history, api_reference=api), hits,
                             self.retriever, body.question, api, body.collection, body.filters,
                             self.scorer)
        if quote is None or quote.score < self.settings.qa.min_passage_score:
            return refusal(found, shown)
        text = extractive.render(quote)
        return AskResponse(
            answer=mask(text) if self.settings.privacy.mask_pii else text, answerable=True,
            citations=[grounding.citation(quote.n, hits[quote.n - 1], quote.text)],
            citation_mode="quoted", usage=Usage(), index_version=found.version, query=shown,
            passage_scorer=self.scorer.label if self.scorer else None,
            timings=Timings(retrieve_ms=found.retrieve_ms,
                            generate_ms=round((time.perf_counter() - started) * 1000, 2)))

    def finish(self, text: str, generation: Generation, usage: Usage, generate_ms: float,
               attribute: bool = True) -> AskResponse:
        """The response to the LLM's ``text``: a refusal when it declined, else the text
        with its own citations, or with attributed ones when it wrote none (``attribute``
        False: left uncited, when the retriever cannot be reached)."""
        hits, found = generation.hits, generation.found
        timings = Timings(retrieve_ms=found.retrieve_ms, generate_ms=round(generate_ms, 2))
        if self.settings.privacy.mask_pii:
            text = mask(text)
        if grounding.is_refusal(text):
            return AskResponse(answer=prompts.REFUSAL, answerable=False, citations=[],
                               usage=usage, timings=timings, index_version=found.version,
                               query=generation.query)
        text, mode = text.strip(), "model"
        if attribute and not grounding.cited_numbers(text, len(hits)):
            spans = sentence_spans(text)
            sims = self.retriever.hit_similarity([text[a:b] for a, b in spans], hits,
                                                 found.collection)
            text = grounding.attribute(text, sims, spans, self.settings.qa.attribution_min_similarity)
            mode = "attributed"
        citations = grounding.citations_used(text, hits)
        return AskResponse(answer=text, answerable=True, citations=citations,
                           citation_mode=mode if citations else "none", usage=usage,
                           timings=timings, index_version=found.version, query=generation.query)


def select(question: str, hits: list[Hit], retriever: Retriever, asked: str | None = None,
           api: bool = True, collection: str | None = None, filters=None,
           scorer: extractive.PassageScorer | None = None
           ) -> tuple[extractive.Quote | None, list[Hit]]:
    """The quoted sentence and the hits its ``n`` counts in: on API reference pages
    (``api``) their profile first (qa.api_reference), then the general engine.
    ``question`` is what the answer is chosen for, ``asked`` the user's own words."""
    quote = None
    if api:
        quote, hits = api_reference.entry_quote(question, hits, retriever, asked, collection,
                                                filters)
    if quote is None:
        quote = extractive.best_passage(question, hits, retriever, scorer)
    return quote, hits


def refusal(found: SearchResponse, query: str | None) -> AskResponse:
    """No passage answers: say so, in a field too, instead of guessing."""
    return AskResponse(answer=prompts.REFUSAL, answerable=False, citations=[], usage=Usage(),
                       index_version=found.version, query=query,
                       timings=Timings(retrieve_ms=found.retrieve_ms, generate_ms=0))

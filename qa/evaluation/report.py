"""`llama-rag eval`: retrieval and answer quality against a QA set with expected sources.

A QA file is JSONL of ``{"question": ..., "sources": ["library/zipfile.html", ...]}``;
an empty ``sources`` list marks a question the corpus cannot answer. A hit matches
an expected source when its source equals it or ends with ``/`` + it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from llama_rag.errors import InvalidInputError
from llama_rag.jsonl import read_models
from llama_rag.protocol import Hit, Turn
from qa import extractive
from qa.conversation import standalone
from qa.evaluation import scores as metrics


class QAItem(BaseModel):
    """One question; ``sources`` empty: not answerable from the corpus. ``reference``
    (from `llama-rag eval make-set`) is the sentence a right answer says."""

    model_config = {"extra": "ignore"}

    question: str = Field(..., min_length=1)
    sources: list[str] = []
    reference: str | None = None
    kind: str | None = None
    key_facts: list[str] = Field([], description="Terms or phrases a right answer holds "
                                 "(any one): human-written, from the reference passage.")
    anchor: str | None = None
    turns: list[str] = Field([], description="The user's earlier questions: this one is a "
                             "follow-up, retrieved with qa.conversation.standalone.")

    def history(self) -> list[Turn]:
        return [Turn(role="user", content=t) for t in self.turns]


class FollowUpScores(BaseModel):
    """Retrieval of follow-up questions with the conversation and on their own words."""

    questions: int
    hit_at_5_with_history: float
    hit_at_5_alone: float
    mrr_with_history: float
    mrr_alone: float


class AnswerScores(BaseModel):
    """Answer quality over the questions that have a reference sentence."""

    questions: int
    answered: int
    token_f1: float
    rouge_l: float
    cites_reference_page: float = Field(
        ..., description="Share of questions whose answer cites a chunk of the reference's page.")
    citation_correct: float = Field(
        ..., description="Share whose answer cites a chunk of that page holding the reference "
        "sentence.")
    support: float | None = Field(
        None, description="Share of answer sentences whose content words a cited chunk holds "
        "(>= 80%).")


class FactScores(BaseModel):
    """Answers to the questions with key facts: is the answer right, cited, short?"""

    questions: int
    answered: int
    key_fact: float = Field(..., description="Share whose answer holds a key fact "
                            "(a refusal holds none).")
    cites_document: float = Field(..., description="Share whose citations name an expected "
                                  "source.")
    median_words: float | None = Field(None, description="Of the answers given.")


class _FactTally:
    def __init__(self) -> None:
        self.n = self.answered = self.facts = self.cited = 0
        self.words: list[int] = []

    def add(self, item: "QAItem", body: dict) -> None:
        self.n += 1
        if not body["answerable"]:
            return
        self.answered += 1
        self.facts += metrics.holds_fact(body["answer"], item.key_facts)
        self.cited += any(matches(c["source"], item.sources) for c in body["citations"])
        self.words.append(metrics.answer_words(body["answer"]))

    def scores(self) -> FactScores | None:
        if not self.n:
            return None
        words = sorted(self.words)
        return FactScores(questions=self.n, answered=self.answered,
                          key_fact=round(self.facts / self.n, 3),
                          cites_document=round(self.cited / self.n, 3),
                          median_words=float(words[len(words) // 2]) if words else None)


class EvalReport(BaseModel):
    questions: int
    answerable_questions: int
    hit_at_1: float
    hit_at_5: float
    mrr: float
    answered: int = 0
    answerable_rate: float | None = Field(
        None, description="Share of answerable questions the system answered.")
    refusal_rate_unanswerable: float | None = Field(
        None, description="Share of unanswerable questions it declined.")
    citation_precision: float | None = Field(
        None, description="Share of cited sources that are among the expected ones.")
    search_p50_ms: float
    search_p95_ms: float
    ask_p50_ms: float | None = None
    ask_p95_ms: float | None = None
    answers: AnswerScores | None = Field(None, description="The system's answers, scored.")
    baseline: AnswerScores | None = Field(
        None, description="The no-LLM extractive baseline (qa.extractive.overlap_sentence "
        "on the top 3 hits), scored in the same run.")
    f1_vs_baseline: float | None = None
    follow_ups: FollowUpScores | None = None
    facts: FactScores | None = Field(None, description="The system's answers to the "
                                     "questions with key facts.")
    facts_baseline: FactScores | None = Field(None, description="The extractive baseline's, "
                                              "on the same hits.")


def load_qa(path: Path) -> list[QAItem]:
    items = [item for _, item in read_models(path, QAItem, "QA file", "qa")]
    if not items:
        raise InvalidInputError(f"QA file {path} holds no questions", param="qa")
    return items


def matches(source: str, expected: list[str]) -> bool:
    """Paths match when one ends with the other at a folder boundary, so a QA set
    written against ``html/`` also scores an index built from ``html/library/``."""
    return any(source == e or source.endswith("/" + e) or e.endswith("/" + source)
               for e in expected)


def rank_of_first_match(sources: list[str], expected: list[str]) -> int | None:
    """1-based rank of the first retrieved source matching ``expected``, deduplicated by source."""
    seen: list[str] = []
    for s in sources:
        if s not in seen:
            seen.append(s)
            if matches(s, expected):
                return len(seen)
    return None


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


class _AnswerTally:
    """Accumulates AnswerScores over the referenced questions."""

    def __init__(self) -> None:
        self.n = self.answered = 0
        self.f1 = self.rouge = self.page = self.correct = 0.0
        self.sentences = self.supported = 0

    def add(self, item: QAItem, body: dict, chunk_text: dict[str, str]) -> None:
        """``body``: an /v1/ask response; ``chunk_text``: chunk id -> full text, where known."""
        self.n += 1
        if not body["answerable"]:
            return
        self.answered += 1
        answer, ref = body["answer"], item.reference or ""
        self.f1 += metrics.token_f1(answer, ref)
        self.rouge += metrics.rouge_l(answer, ref)
        cited = [(c["source"], chunk_text.get(c.get("chunk_id", ""), c.get("snippet", "")))
                 for c in body["citations"]]
        on_page = [text for source, text in cited if matches(source, item.sources)]
        self.page += bool(on_page)
        self.correct += any(metrics.contains(text, ref) for text in on_page)
        for s in metrics.answer_sentences(answer):
            self.sentences += 1
            self.supported += metrics.supported(s, [text for _, text in cited])

    def scores(self) -> AnswerScores | None:
        if not self.n:
            return None
        n = self.n
        return AnswerScores(
            questions=n, answered=self.answered, token_f1=round(self.f1 / n, 3),
            rouge_l=round(self.rouge / n, 3), cites_reference_page=round(self.page / n, 3),
            citation_correct=round(self.correct / n, 3),
            support=round(self.supported / self.sentences, 3) if self.sentences else None)


def _follow_up_scores(pairs: list[tuple[int | None, int | None]]) -> FollowUpScores | None:
    """From (rank with history, rank alone) per follow-up."""
    if not pairs:
        return None

    with_history, alone = [p[0] for p in pairs], [p[1] for p in pairs]
    return FollowUpScores(questions=len(pairs), hit_at_5_with_history=hit_at(with_history, 5),
                          hit_at_5_alone=hit_at(alone, 5), mrr_with_history=mrr(with_history),
                          mrr_alone=mrr(alone))


def hit_at(ranks: list[int | None], k: int) -> float:
    """Share of questions whose first matching source ranks k or better."""
    return round(sum(r is not None and r <= k for r in ranks) / max(1, len(ranks)), 3)


def mrr(ranks: list[int | None]) -> float:
    return round(sum(1 / r for r in ranks if r) / max(1, len(ranks)), 3)


def baseline_answer(question: str, hits: list[Hit]) -> dict:
    """The extractive baseline as an /v1/ask-shaped body (no LLM, no embedder)."""
    return quoted_body(extractive.overlap_sentence(question, hits), hits)


def quoted_body(quote: extractive.Quote | None, hits: list[Hit]) -> dict:
    """An extractive answer as an /v1/ask-shaped body (a refusal when nothing was quoted)."""
    if quote is None:
        return {"answer": "", "answerable": False, "citations": []}
    hit = hits[quote.n - 1]
    return {"answer": extractive.render(quote), "answerable": True,
            "citations": [{"n": quote.n, "source": hit.source, "chunk_id": hit.chunk_id,
                           "snippet": hit.text}]}


def evaluate(items: list[QAItem], search: Callable[[str], list[Hit]],
             ask: Callable[[str], dict] | None = None,
             progress: Callable[[int], None] = lambda n: None) -> EvalReport:
    """``search(q)`` gives ranked hits; ``ask(q)`` (optional) gives an /v1/ask body.

    Questions with a ``reference`` also score the answers (token-F1, ROUGE-L, citations,
    support) and, in the same run, the extractive baseline on the same hits.
    """
    ranks, search_ms, ask_ms, alone = [], [], [], []
    answered = refused_unanswerable = cited = cited_ok = 0
    ours, baseline = _AnswerTally(), _AnswerTally()
    facts, facts_baseline = _FactTally(), _FactTally()
    for n, item in enumerate(items, start=1):
        started = time.perf_counter()
        hits = search(standalone(item.question, item.history()))
        search_ms.append((time.perf_counter() - started) * 1000)
        if item.sources:
            ranks.append(rank_of_first_match([h.source for h in hits], item.sources))
            if item.turns:
                alone.append((ranks[-1], rank_of_first_match(
                    [h.source for h in search(item.question)], item.sources)))
        texts = {h.chunk_id: h.text for h in hits}
        if item.reference:
            baseline.add(item, baseline_answer(item.question, hits), texts)
        if item.key_facts:
            facts_baseline.add(item, baseline_answer(item.question, hits))
        if ask is not None:
            started = time.perf_counter()
            body = ask(item.question, item.history()) if item.turns else ask(item.question)
            ask_ms.append((time.perf_counter() - started) * 1000)
            if item.sources and body["answerable"]:
                answered += 1
                for c in body["citations"]:
                    cited += 1
                    cited_ok += matches(c["source"], item.sources)
            if not item.sources and not body["answerable"]:
                refused_unanswerable += 1
            if item.reference:
                ours.add(item, body, texts)
            if item.key_facts:
                facts.add(item, body)
        progress(n)
    with_answer = len(ranks)
    unanswerable = len(items) - with_answer
    scores, base = ours.scores(), baseline.scores()
    return EvalReport(
        questions=len(items), answerable_questions=with_answer,
        hit_at_1=hit_at(ranks, 1), hit_at_5=hit_at(ranks, 5), mrr=mrr(ranks),
        answered=answered,
        answerable_rate=round(answered / max(1, with_answer), 3) if ask else None,
        refusal_rate_unanswerable=(round(refused_unanswerable / unanswerable, 3)
                                   if ask and unanswerable else None),
        citation_precision=round(cited_ok / cited, 3) if ask and cited else None,
        search_p50_ms=_p(search_ms, 0.5), search_p95_ms=_p(search_ms, 0.95),
        ask_p50_ms=_p(ask_ms, 0.5) if ask_ms else None,
        ask_p95_ms=_p(ask_ms, 0.95) if ask_ms else None,
        answers=scores, baseline=base, follow_ups=_follow_up_scores(alone),
        f1_vs_baseline=(round(scores.token_f1 / base.token_f1, 2)
                        if scores and base and base.token_f1 else None),
        facts=facts.scores(), facts_baseline=facts_baseline.scores())


def report_lines(report: EvalReport) -> list[str]:
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"
    lines = [f"questions: {report.questions} ({report.answerable_questions} with expected sources)",
             f"retrieval: hit@1 {f(report.hit_at_1)}  hit@5 {f(report.hit_at_5)}  "
             f"MRR {f(report.mrr)}",
             f"search latency: p50 {report.search_p50_ms} ms  p95 {report.search_p95_ms} ms"]
    if report.ask_p50_ms is not None:
        lines += [f"answers: answerable rate {f(report.answerable_rate)}  refused when "
                  f"unanswerable {f(report.refusal_rate_unanswerable)}  citation precision "
                  f"{f(report.citation_precision)}",
                  f"ask latency: p50 {report.ask_p50_ms} ms  p95 {report.ask_p95_ms} ms"]
    for label, a in (("answer", report.answers), ("baseline", report.baseline)):
        if a:
            lines.append(f"{label}: token-F1 {f(a.token_f1)}  ROUGE-L {f(a.rouge_l)}  cites the "
                         f"page {f(a.cites_reference_page)}  citation correct "
                         f"{f(a.citation_correct)}  support {f(a.support)}  ({a.answered}/"
                         f"{a.questions} answered)")
    if (fu := report.follow_ups) is not None:
        lines.append(f"follow-ups ({fu.questions}): hit@5 {fu.hit_at_5_with_history:.3f} with the "
                     f"conversation, {fu.hit_at_5_alone:.3f} alone; MRR {fu.mrr_with_history:.3f} "
                     f"vs {fu.mrr_alone:.3f}")
    for label, fs in (("key facts", report.facts), ("key facts, baseline", report.facts_baseline)):
        if fs:
            lines.append(f"{label}: held {f(fs.key_fact)}  cites the document "
                         f"{f(fs.cites_document)}  median {fs.median_words} words  "
                         f"({fs.answered}/{fs.questions} answered)")
    if report.f1_vs_baseline is not None:
        lines.append(f"answer token-F1 / baseline: {report.f1_vs_baseline:.2f}x")
    return lines


def dumps(report: EvalReport) -> str:
    return json.dumps(report.model_dump(), indent=2)

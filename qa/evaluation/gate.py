"""The index gate: a new version is published only if it answers a QA set well enough.

`llama-rag index ... --gate QA.jsonl` builds the version beside the published ones,
scores it here (retrieval hit@5 and MRR; with reference answers, the token-F1 of the
extractive answers qa.answerer gives /v1/ask: no LLM, so the gate costs seconds), scores the
current version on the same questions in the same run, and passes only when the
thresholds hold and no figure falls more than ``max_drop`` below the current
version's. Otherwise the candidate is deleted and ``CURRENT`` stays.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from llama_rag.config import Settings
from llama_rag.errors import InvalidInputError
from qa.evaluation.report import EvalReport, QAItem, evaluate, load_qa
from qa.evaluation.targets import local_target


class GateSpec(BaseModel):
    qa: Path
    min_hit5: float | None = Field(None, ge=0, le=1)
    min_answer_f1: float | None = Field(None, ge=0, le=1)
    max_drop: float = Field(0.02, ge=0, le=1, description="How far below the current "
                            "version's hit@5, MRR and answer F1 a candidate may fall.")


class GateFigures(BaseModel):
    hit_at_5: float
    mrr: float
    answer_f1: float | None = None


class GateVerdict(BaseModel):
    passed: bool
    candidate: GateFigures
    current: GateFigures | None = None
    reasons: list[str] = Field([], description="Why it was refused; empty when it passed.")


def load_gate_items(spec: GateSpec) -> list[QAItem]:
    """The QA set, checked before any indexing work."""
    items = load_qa(spec.qa)
    if not any(i.sources for i in items):
        raise InvalidInputError(f"--gate {spec.qa}: no question has expected sources, so the "
                                "gate has nothing to measure", param="gate")
    if spec.min_answer_f1 is not None and not any(i.reference for i in items):
        raise InvalidInputError(f"--min-answer-f1 needs reference answers; {spec.qa} has none "
                                "(make one with `llama-rag eval make-set`)", param="min_answer_f1")
    return items


def figures(report: EvalReport) -> GateFigures:
    return GateFigures(hit_at_5=report.hit_at_5, mrr=report.mrr,
                       answer_f1=report.answers.token_f1 if report.answers else None)


def score_version(version, settings: Settings, items: list[QAItem], embedder=None) -> GateFigures:
    """Retrieval and extractive-answer figures of one index version (published or not)."""
    from indexing.retriever import RetrieverCore

    core = RetrieverCore(settings, embedder=embedder, pinned=version)
    searcher, ask = local_target(core, settings)
    return figures(evaluate(items, searcher(None), ask if any(i.reference for i in items)
                            else None))


def decide(spec: GateSpec, candidate: GateFigures, current: GateFigures | None) -> GateVerdict:
    reasons = []
    if spec.min_hit5 is not None and candidate.hit_at_5 < spec.min_hit5:
        reasons.append(f"hit@5 {candidate.hit_at_5:.3f} is under --min-hit5 {spec.min_hit5}")
    if spec.min_answer_f1 is not None and (candidate.answer_f1 or 0) < spec.min_answer_f1:
        reasons.append(f"answer token-F1 {candidate.answer_f1 or 0:.3f} is under "
                       f"--min-answer-f1 {spec.min_answer_f1}")
    if current is not None:
        for name in ("hit_at_5", "mrr", "answer_f1"):
            new, old = getattr(candidate, name), getattr(current, name)
            if new is not None and old is not None and new < old - spec.max_drop:
                reasons.append(f"{name} {new:.3f} fell below the current version's {old:.3f} "
                               f"by more than {spec.max_drop}")
    return GateVerdict(passed=not reasons, candidate=candidate, current=current, reasons=reasons)

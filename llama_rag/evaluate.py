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


class QAItem(BaseModel):
    model_config = {"extra": "ignore"}

    question: str = Field(..., min_length=1)
    sources: list[str] = []


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


def evaluate(items: list[QAItem], search: Callable[[str], list[str]],
             ask: Callable[[str], dict] | None = None,
             progress: Callable[[int], None] = lambda n: None) -> EvalReport:
    """``search(q)`` gives ranked sources; ``ask(q)`` (optional) gives an /v1/ask body."""
    ranks, search_ms, ask_ms = [], [], []
    answered = refused_unanswerable = cited = cited_ok = 0
    for n, item in enumerate(items, start=1):
        started = time.perf_counter()
        sources = search(item.question)
        search_ms.append((time.perf_counter() - started) * 1000)
        if item.sources:
            ranks.append(rank_of_first_match(sources, item.sources))
        if ask is not None:
            started = time.perf_counter()
            body = ask(item.question)
            ask_ms.append((time.perf_counter() - started) * 1000)
            if item.sources and body["answerable"]:
                answered += 1
                for c in body["citations"]:
                    cited += 1
                    cited_ok += matches(c["source"], item.sources)
            if not item.sources and not body["answerable"]:
                refused_unanswerable += 1
        progress(n)
    with_answer = len(ranks)
    unanswerable = len(items) - with_answer
    return EvalReport(
        questions=len(items), answerable_questions=with_answer,
        hit_at_1=round(sum(r == 1 for r in ranks) / max(1, with_answer), 3),
        hit_at_5=round(sum(r is not None and r <= 5 for r in ranks) / max(1, with_answer), 3),
        mrr=round(sum(1 / r for r in ranks if r) / max(1, with_answer), 3),
        answered=answered,
        answerable_rate=round(answered / max(1, with_answer), 3) if ask else None,
        refusal_rate_unanswerable=(round(refused_unanswerable / unanswerable, 3)
                                   if ask and unanswerable else None),
        citation_precision=round(cited_ok / cited, 3) if ask and cited else None,
        search_p50_ms=_p(search_ms, 0.5), search_p95_ms=_p(search_ms, 0.95),
        ask_p50_ms=_p(ask_ms, 0.5) if ask_ms else None,
        ask_p95_ms=_p(ask_ms, 0.95) if ask_ms else None)


def http_target(url: str, collection: str | None, max_tokens: int | None, answers: bool):
    """(mode -> search function, ask function or None) against a running server."""
    from llama_rag.client import Client

    client = Client(url)

    def searcher(mode: str | None) -> Callable[[str], list[str]]:
        body = {"k": 5, "mode": mode, "collection": collection}
        return lambda q: [h["source"] for h in client.post(
            "/v1/search", {"query": q, **{k: v for k, v in body.items() if v}})["hits"]]

    def ask(q: str) -> dict:
        extra = {"collection": collection, "max_tokens": max_tokens}
        return client.post("/v1/ask", {"question": q, **{k: v for k, v in extra.items() if v}})

    return searcher, (ask if answers else None)


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
    return lines


def dumps(report: EvalReport) -> str:
    return json.dumps(report.model_dump(), indent=2)


def compare_modes(reports: dict[str, EvalReport], out: Path, title: str) -> tuple[str, list[Path]]:
    """A side-by-side table of retrieval modes, saved as ``out``.json and (with
    matplotlib) ``out``.png; returns (table, files written)."""
    rows = [f"{'mode':<8} {'hit@1':>6} {'hit@5':>6} {'MRR':>6} {'p50 ms':>8} {'p95 ms':>8}"]
    for mode, r in reports.items():
        rows.append(f"{mode:<8} {r.hit_at_1:6.3f} {r.hit_at_5:6.3f} {r.mrr:6.3f} "
                    f"{r.search_p50_ms:8.1f} {r.search_p95_ms:8.1f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [out.with_suffix(".json")]
    files[0].write_text(json.dumps({"title": title, "modes": {m: r.model_dump()
                                                              for m, r in reports.items()}},
                                   indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "\n".join(rows + ["(matplotlib is not installed: no chart)"]), files
    fig, ax = plt.subplots(figsize=(7, 3.6))
    metrics = ("hit_at_1", "hit_at_5", "mrr")
    width = 0.8 / len(reports)
    for i, (mode, r) in enumerate(reports.items()):
        xs = [m + i * width for m in range(len(metrics))]
        values = [getattr(r, m) for m in metrics]
        ax.bar(xs, values, width, label=f"{mode} (p50 {r.search_p50_ms:.0f} ms)")
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks([m + width * (len(reports) - 1) / 2 for m in range(len(metrics))],
                  ["hit@1", "hit@5", "MRR"])
    ax.set_ylim(0, 1.1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    files.append(out.with_suffix(".png"))
    fig.savefig(files[1], dpi=110)
    plt.close(fig)
    return "\n".join(rows), files

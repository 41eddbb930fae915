"""Grounded QA: `/v1/ask` vs the bare LLM deployment on the same prompts, concurrency 1, 4, 8.

Serves the app in-process on loopback over an index of Python docs pages (indexed
first if `--index-dir` has no published version), then for the answerable questions
of eval/python-docs-qa.jsonl:

- ask: `POST /v1/ask` with `answer_mode: generate` (retrieve + fenced prompt + generate + citations)
- bare: `POST /v1/chat/completions` with the very messages /v1/ask builds for that
  question (fetched once, beforehand, via /v1/search and qa.grounding)

Both with the same `max_tokens` and sampling, after a warm-up that puts every prompt
in vLLM's prefix cache (so neither side gets it first); each level runs alternating
rounds (ask first, then bare first, ...). Prints the median round's answers/s, p50/p95
latency, for ask the retrieve / generate split, and the median of the per-round
ratios ask / bare answers/s.

    python bench/qa.py [--index-dir DIR] [--requests 16] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import grouped_chart, save, serve_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["zipfile", "tarfile", "gzip", "csv", "json", "glob", "tempfile", "shutil", "sqlite3",
         "datetime", "re", "pathlib"]
CONCURRENCY = [1, 4, 8]


def ensure_index(index_dir: Path, settings) -> None:
    from indexing.store import IndexStore

    if IndexStore(index_dir).current():
        return
    import shutil
    import tempfile

    from pipelines.ingest import run

    corpus = Path(tempfile.mkdtemp(prefix="bench-qa-")) / "library"
    corpus.mkdir(parents=True)
    for page in PAGES:
        shutil.copy(f"/usr/share/doc/python3.11/html/library/{page}.html", corpus)
    run([corpus.parent], settings.model_copy(update={"index": settings.index.model_copy(
        update={"dir": index_dir})}), progress=False)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * len(values))) - 1 if q < 1 else -1)]


async def level(post, items: list, concurrency: int) -> dict:
    gate = asyncio.Semaphore(concurrency)
    rows: list[dict] = []

    async def one(item):
        async with gate:
            started = time.perf_counter()
            body = await post(item)
            rows.append({"latency": time.perf_counter() - started, **body})

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in items))
    wall = time.perf_counter() - started
    lat = [r["latency"] for r in rows]
    out = {"requests": len(rows), "answers_per_s": len(rows) / wall,
           "p50_latency_s": statistics.median(lat), "p95_latency_s": pct(lat, 0.95)}
    if "retrieve_ms" in rows[0]:
        for key in ("retrieve_ms", "generate_ms"):
            vals = [r[key] for r in rows]
            out[f"p50_{key}"], out[f"p95_{key}"] = statistics.median(vals), pct(vals, 0.95)
    return out


async def ask_messages(http, settings, question: str, max_tokens: int) -> list[dict]:
    """The exact messages /v1/ask sends the LLM for ``question`` (via /v1/search)."""
    from llama_rag.protocol import Hit
    from qa import grounding, prompts

    cfg = settings.qa
    found = (await http.post("/v1/search", json={"query": question, "k": cfg.k})).json()
    hits = grounding.relevant([Hit(**h) for h in found["hits"]], cfg)
    budget = prompts.context_budget(settings.llm.max_model_len, max_tokens, question)
    hits = hits[: len(prompts.quoted(hits, cfg, budget))]
    return prompts.build_messages(question, hits, cfg, budget)


def _median_round(rounds: list[dict], side: str) -> dict:
    """The round whose answers/s is the median for that side (as bench/serve.py)."""
    ranked = sorted((r[side] for r in rounds), key=lambda x: x["answers_per_s"])
    return ranked[len(ranked) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=ROOT / ".bench" / "qa-index")
    parser.add_argument("--requests", type=int, default=16, help="questions per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level")
    args = parser.parse_args()

    import httpx

    from llama_rag.config import load_settings
    from qa.evaluation.report import load_qa
    from llama_rag.model_files import apply_offline_policy

    settings = load_settings(None, {"index.dir": args.index_dir})
    apply_offline_policy(settings.models)
    ensure_index(args.index_dir, settings)
    url = serve_app(settings, "bench-qa")
    import ray
    from ray import serve
    questions = [i.question for i in load_qa(ROOT / "eval" / "python-docs-qa.jsonl") if i.sources]
    questions = (questions * (args.requests // len(questions) + 1))[: args.requests]
    cfg = settings.qa

    async def run_all() -> dict:
        async with httpx.AsyncClient(base_url=url, timeout=600,
                                     limits=httpx.Limits(max_connections=64)) as http:
            messages = {q: await ask_messages(http, settings, q, args.max_tokens)
                        for q in set(questions)}

            async def ask(q: str) -> dict:
                resp = await http.post("/v1/ask", json={"question": q, "max_tokens": args.max_tokens,
                                                              "answer_mode": "generate"})
                resp.raise_for_status()
                return resp.json()["timings"]

            async def bare(q: str) -> dict:
                resp = await http.post("/v1/chat/completions", json={
                    "model": settings.llm.model_id, "messages": messages[q],
                    "max_tokens": args.max_tokens, "temperature": cfg.temperature,
                    "frequency_penalty": cfg.frequency_penalty})
                resp.raise_for_status()
                return {}

            for q in sorted(set(questions)):  # warm-up, not counted: both sides then find
                await ask(q)                   # every prompt in vLLM's prefix cache
            out = {}
            for c in CONCURRENCY:
                rounds = []
                for r in range(args.rounds):  # alternate who goes first: the host drifts
                    sides = {"ask": ask, "bare": bare}
                    order = ("ask", "bare") if r % 2 == 0 else ("bare", "ask")
                    rounds.append({s: await level(sides[s], questions, c) for s in order})
                out[c] = rounds
            return out

    try:
        levels = asyncio.run(run_all())
    finally:
        serve.shutdown()
        ray.shutdown()
    result = {"requests_per_level": len(questions), "max_tokens": args.max_tokens,
              "index_pages": PAGES, "levels": {}}
    for c, rounds in levels.items():
        ratios = [r["ask"]["answers_per_s"] / r["bare"]["answers_per_s"] for r in rounds]
        ratio = statistics.median(ratios)
        sides = {s: _median_round(rounds, s) for s in ("ask", "bare")}
        result["levels"][str(c)] = {**sides, "ratio_ask_over_bare": ratio,
                                    "ratio_per_round": ratios, "rounds": rounds}
        a, b = sides["ask"], sides["bare"]
        print(f"c={c}: ask {a['answers_per_s']:.2f}/s p50 {a['p50_latency_s']:.2f}s "
              f"p95 {a['p95_latency_s']:.2f}s (retrieve p50 {a['p50_retrieve_ms']:.0f} ms, "
              f"generate p50 {a['p50_generate_ms']:.0f} ms) | bare {b['answers_per_s']:.2f}/s "
              f"p50 {b['p50_latency_s']:.2f}s | ratio {ratio:.3f} (median of rounds "
              f"{', '.join(f'{x:.3f}' for x in ratios)})")
    save("qa", result)
    grouped_chart("qa", "/v1/ask vs bare chat completions, same prompts (CPU, SmolLM2-135M)",
                  [f"c={c}" for c in CONCURRENCY],
                  {label: [result["levels"][str(c)][side]["answers_per_s"] for c in CONCURRENCY]
                   for side, label in (("ask", "/v1/ask (ours)"), ("bare", "bare chat route"))},
                  "answers/s")
    print(json.dumps({c: round(v["ratio_ask_over_bare"], 3) for c, v in result["levels"].items()}))


if __name__ == "__main__":
    main()

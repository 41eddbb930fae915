"""What a person waits for: one `/v1/ask` at concurrency 1, and `llama-rag search` from
a cold start, on a whole-corpus index, with the default settings.

- ask: `POST /v1/ask` with the default settings (the bundled model answers
  extractively) and with `answer_mode: generate`; the baseline is the bare chat route
  given the very messages /v1/ask builds (the LLM alone), so ask / bare is what
  retrieval, prompt building and citations add to a generated answer.
- search: the wall time of the `llama-rag search` command in a fresh process (imports,
  embedder load, index and BM25 load, query), with the default embedder backend
  against the old default (torch), alternating, median of --runs each.

    python bench/latency.py --index-dir DIR [--questions 12] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.qa import ask_messages  # noqa: E402
from bench.report import bar_chart, save, serve_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OLD_DEFAULT = {"LLAMA_RAG_MODELS__EMBED_BACKEND": "torch",
               "LLAMA_RAG_MODELS__EMBED_QUANTIZATION": "none"}


def search_cold(index_dir: Path, env: dict[str, str]) -> float:
    cli = Path(sys.executable).with_name("llama-rag")
    started = time.perf_counter()
    proc = subprocess.run([str(cli), "search", "how do I read a zip archive", "--index-dir",
                           str(index_dir), "-k", "5"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    seconds = time.perf_counter() - started
    if proc.returncode or "zipfile.html" not in proc.stdout:
        raise SystemExit(f"llama-rag search failed: {proc.stderr[-1500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, help="for generate (default: qa.max_tokens)")
    args = parser.parse_args()

    import httpx

    from llama_rag.config import load_settings
    from qa.evaluation.report import load_qa
    from llama_rag.model_files import apply_offline_policy

    cold = {"default": [], "old default (torch)": []}
    for _ in range(args.runs):  # alternating, before the server takes the cores
        cold["default"].append(search_cold(args.index_dir, {}))
        cold["old default (torch)"].append(search_cold(args.index_dir, OLD_DEFAULT))
    search = {k: round(statistics.median(v), 2) for k, v in cold.items()}
    print(f"llama-rag search cold: default {search['default']:.2f} s, old default (torch) "
          f"{search['old default (torch)']:.2f} s (median of {args.runs}: "
          f"{cold['default']} vs {cold['old default (torch)']})")

    settings = load_settings(None, {"index.dir": args.index_dir})
    apply_offline_policy(settings.models)
    max_tokens = args.max_tokens or settings.qa.max_tokens
    questions = [i.question for i in load_qa(ROOT / "eval" / "python-docs-qa.jsonl")
                 if i.sources][: args.questions]
    url = serve_app(settings, "bench-latency")
    import ray
    from ray import serve

    async def run_all() -> dict[str, list[dict]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            async def timed(path: str, body: dict) -> dict:
                started = time.perf_counter()
                resp = await http.post(path, json=body)
                resp.raise_for_status()
                data = resp.json()
                return {"s": time.perf_counter() - started,
                        "completion_tokens": (data.get("usage") or {}).get("completion_tokens"),
                        "prompt_tokens": (data.get("usage") or {}).get("prompt_tokens"),
                        **(data.get("timings") or {})}

            messages = {q: await ask_messages(http, settings, q, max_tokens) for q in questions}
            await timed("/v1/ask", {"question": questions[0], "answer_mode": "generate"})
            out: dict[str, list[dict]] = {"ask default": [], "ask generate": [], "bare chat": []}
            for q in questions:  # one at a time: what one person feels
                out["ask default"].append(await timed("/v1/ask", {"question": q}))
                out["ask generate"].append(await timed(
                    "/v1/ask", {"question": q, "answer_mode": "generate",
                                "max_tokens": max_tokens}))
                out["bare chat"].append(await timed("/v1/chat/completions", {
                    "model": settings.llm.model_id, "messages": messages[q],
                    "max_tokens": max_tokens, "temperature": settings.qa.temperature,
                    "frequency_penalty": settings.qa.frequency_penalty}))
            return out

    try:
        rows = asyncio.run(run_all())
    finally:
        serve.shutdown()
        ray.shutdown()
    ask = {}
    for path, rs in rows.items():
        lat = sorted(r["s"] for r in rs)
        ask[path] = {"p50_s": round(statistics.median(lat), 3), "max_s": round(lat[-1], 3),
                     "mean_prompt_tokens": _mean(rs, "prompt_tokens"),
                     "mean_completion_tokens": _mean(rs, "completion_tokens"),
                     "p50_retrieve_ms": _median(rs, "retrieve_ms"),
                     "p50_generate_ms": _median(rs, "generate_ms")}
        print(f"{path:13} p50 {ask[path]['p50_s']:6.2f} s  max {ask[path]['max_s']:6.2f} s  "
              f"prompt {ask[path]['mean_prompt_tokens']} tok  completion "
              f"{ask[path]['mean_completion_tokens']} tok  retrieve p50 "
              f"{ask[path]['p50_retrieve_ms']} ms  generate p50 {ask[path]['p50_generate_ms']} ms")
    ratio = ask["ask generate"]["p50_s"] / ask["bare chat"]["p50_s"]
    print(f"ratio ask generate / bare chat p50: {ratio:.3f}; search cold default / old: "
          f"{search['default'] / search['old default (torch)']:.3f}")
    save("latency", {"index_dir": str(args.index_dir), "questions": len(questions),
                     "max_tokens": max_tokens, "search_cold_s": search, "search_runs": cold,
                     "ask": ask, "ratio_generate_over_bare_p50": round(ratio, 3)})
    bar_chart("latency", "One question at a time, whole Python-docs index (p50 seconds)",
              ["search cold (default)", "search cold (torch)", *ask],
              {"seconds": [search["default"], search["old default (torch)"],
                           *(a["p50_s"] for a in ask.values())]}, "seconds")


def _mean(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.mean(vals), 1) if vals else None


def _median(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 1) if vals else None


if __name__ == "__main__":
    main()

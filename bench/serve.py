"""LLM serving: our Serve endpoint vs the bare vLLM engine in-process, same prompts.

For concurrency 1, 4 and 16 it sends the same completion prompts (64 output tokens
each, `ignore_eos`, temperature 0) through `llama-rag`'s Serve app over HTTP
(streaming, loopback) and straight into vLLM's AsyncLLM in this process, with the
same engine settings (`settings.llm`). Both stay up for the whole run, and each
level runs in alternating rounds (Serve then bare, bare then Serve, ...), so a slow
minute on a shared host hits both sides alike. Prints requests/s, output tokens/s,
p50/p95 latency and mean time to first token per side (median round), and the
median of the per-round ratios Serve / bare.

    python bench/serve.py [--rounds 3] [--requests N] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import grouped_chart, save, serve_app  # noqa: E402

TOPICS = ["zip archives", "CSV files", "JSON", "regular expressions", "threads", "sockets",
          "decorators", "generators", "dataclasses", "type hints", "virtual environments",
          "logging", "unit tests", "async IO", "pathlib", "sqlite"]
CONCURRENCY = [1, 4, 16]
LEVELS = list(CONCURRENCY)  # --levels narrows it for quick tuning runs (then nothing is saved)


def prompts(n: int) -> list[str]:
    return [f"Question {i}: explain {TOPICS[i % len(TOPICS)]} in Python to a beginner.\nAnswer:"
            for i in range(n)]


def summarise(rows: list[tuple[float, float, int]], wall: float) -> dict[str, float]:
    latencies = sorted(r[0] for r in rows)
    return {"requests": len(rows), "wall_s": wall, "requests_per_s": len(rows) / wall,
            "output_tokens_per_s": sum(r[2] for r in rows) / wall,
            "p50_latency_s": statistics.median(latencies),
            "p95_latency_s": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
            "mean_ttft_s": statistics.fmean(r[1] for r in rows)}


async def run_level(one, texts: list[str], concurrency: int) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)

    async def guarded(text: str):
        async with gate:
            return await one(text)

    started = time.perf_counter()
    rows = await asyncio.gather(*(guarded(t) for t in texts))
    return summarise(list(rows), time.perf_counter() - started)


def serve_client(http, url: str, model: str, max_tokens: int):
    """An async ``one(text)`` streaming a completion through the Serve endpoint."""

    async def one(text: str) -> tuple[float, float, int]:
        body = {"model": model, "prompt": text, "max_tokens": max_tokens,
                "temperature": 0, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}
        started, first, tokens = time.perf_counter(), None, 0
        async with http.stream("POST", url, json=body) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and first is None:
                    first = time.perf_counter() - started
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        return time.perf_counter() - started, first or 0.0, tokens

    return one


def timed_generate(engine, params):
    """An async ``one(text) -> (latency s, time to first token s, output tokens)`` on ``engine``."""

    async def one(text: str) -> tuple[float, float, int]:
        started, first, final = time.perf_counter(), None, None
        async for out in engine.generate(text, params, request_id=uuid.uuid4().hex):
            if first is None and out.outputs and out.outputs[0].token_ids:
                first = time.perf_counter() - started
            final = out
        return time.perf_counter() - started, first or 0.0, len(final.outputs[0].token_ids)

    return one


def bare_engine(settings):
    """The bare vLLM engine in this process, with the replica's engine args and env."""
    import os

    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from llama_rag.model_files import resolve_llm
    from llama_rag.engine import engine_env, engine_kwargs

    os.environ.update(engine_env(settings))
    return AsyncLLM.from_engine_args(
        AsyncEngineArgs(model=resolve_llm(settings).path, **engine_kwargs(settings)))


def requests_for(concurrency: int, override: int | None) -> int:
    """Enough requests for several waves at each level, few enough to repeat rounds."""
    return override or max(8, 4 * concurrency)


async def measure(settings, url: str, args) -> dict[int, dict]:
    """Both sides stay up; each round runs the level on one then the other, alternating
    which goes first, so a slower minute on a shared host hits both alike."""
    import httpx
    from vllm import SamplingParams

    engine = None if args.serve_only else bare_engine(settings)
    out: dict[int, dict] = {}
    try:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:
            sides = {"serve": serve_client(http, url + "/v1/completions",
                                           settings.llm.model_id, args.max_tokens)}
            if engine is not None:
                params = SamplingParams(max_tokens=args.max_tokens, temperature=0, ignore_eos=True)
                sides["bare"] = timed_generate(engine, params)
            for one in sides.values():  # warm-up, not counted
                await run_level(one, prompts(16), 16)
            for c in LEVELS:
                texts = prompts(requests_for(c, args.requests))
                rounds: list[dict[str, dict]] = []
                for r in range(args.rounds):
                    order = list(sides) if r % 2 == 0 else list(reversed(sides))
                    rounds.append({name: await run_level(sides[name], texts, c) for name in order})
                    print(f"c={c:<3} round {r + 1}: " + "  ".join(
                        f"{n} {rounds[-1][n]['output_tokens_per_s']:6.1f} tok/s" for n in sides),
                        flush=True)
                out[c] = {"requests": len(texts), "rounds": rounds}
    finally:
        if engine is not None:
            engine.shutdown()
    return out


def median_round(rounds: list[dict], side: str) -> dict:
    """The round whose tok/s is the median for ``side`` (its latencies come with it)."""
    ordered = sorted(rounds, key=lambda r: r[side]["output_tokens_per_s"])
    return ordered[len(ordered) // 2][side]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="requests per level and round "
                        "(default: max(8, 4 x concurrency))")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", type=int, nargs="*", help="tuning: only these levels")
    parser.add_argument("--serve-only", action="store_true", help="tuning: skip the bare side")
    args = parser.parse_args()
    tuning = bool(args.levels or args.serve_only)
    if args.levels:
        LEVELS[:] = args.levels

    import ray
    from ray import serve

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    # Two engines are up at once: each reserves 2 GiB of KV cache instead of 30% of RAM.
    settings = load_settings(None, {"llm.cpu_kvcache_space_gb": 2})
    apply_offline_policy(settings.models)
    print(f"{args.rounds} alternating rounds per level, {args.max_tokens} output tokens per "
          f"request, model {settings.llm.model_id}, engine {settings.llm.model_dump(include={'dtype', 'max_num_seqs', 'max_num_batched_tokens', 'stream_batching_interval_ms'})}")
    url = serve_app(settings, "bench")
    try:
        measured = asyncio.run(measure(settings, url, args))
    finally:
        serve.shutdown()
        ray.shutdown()
    if tuning:
        return
    result = {"max_tokens": args.max_tokens, "rounds": args.rounds, "levels": {}}
    for c in CONCURRENCY:
        rounds = measured[c]["rounds"]
        ratios = sorted(r["serve"]["output_tokens_per_s"] / r["bare"]["output_tokens_per_s"]
                        for r in rounds)
        ratio = statistics.median(ratios)
        level = {"requests": measured[c]["requests"], "serve": median_round(rounds, "serve"),
                 "bare": median_round(rounds, "bare"), "ratio_serve_over_bare": ratio,
                 "ratio_per_round": ratios, "rounds": rounds}
        result["levels"][str(c)] = level
        for side in ("serve", "bare"):
            r = level[side]
            print(f"c={c:<3} {side:5} {r['requests_per_s']:6.2f} req/s  {r['output_tokens_per_s']:7.1f} tok/s  "
                  f"p50 {r['p50_latency_s']:6.2f} s  p95 {r['p95_latency_s']:6.2f} s  "
                  f"TTFT {r['mean_ttft_s']:6.3f} s   (median of {len(rounds)} rounds)")
        print(f"c={c:<3} ratio Serve / bare (output tokens/s): median {ratio:.3f} "
              f"(rounds: {', '.join(f'{x:.3f}' for x in ratios)})")
    save("serve", result)
    grouped_chart("serve", "Serve endpoint vs bare vLLM engine (CPU, SmolLM2-135M, median round)",
                  [f"c={c}" for c in CONCURRENCY],
                  {label: [result["levels"][str(c)][side]["output_tokens_per_s"]
                           for c in CONCURRENCY]
                   for side, label in (("serve", "Serve endpoint (ours)"),
                                       ("bare", "bare vLLM engine"))},
                  "output tokens/s")

if __name__ == "__main__":
    main()

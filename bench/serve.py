"""LLM serving: our Serve endpoint vs the bare vLLM engine in-process, same prompts.

For concurrency 1, 4 and 16 it sends the same completion prompts (64 output tokens
each, `ignore_eos`, temperature 0) through `llama-rag`'s Serve app over HTTP
(streaming, loopback) and straight into vLLM's AsyncLLM in this process, with the
same engine settings (`settings.llm`). Prints requests/s, output tokens/s, p50/p95
latency and mean time to first token per side, and the ratio Serve / bare.

    python bench/serve.py [--requests 32] [--max-tokens 64]
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

from bench.report import bar_chart, save, serve_app  # noqa: E402

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


def serve_side(settings, texts: list[str], max_tokens: int) -> dict[int, dict]:
    import httpx

    url = serve_app(settings, "bench") + "/v1/completions"
    import ray
    from ray import serve

    async def levels() -> dict[int, dict]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:
            async def one(text: str) -> tuple[float, float, int]:
                body = {"model": settings.llm.model_id, "prompt": text, "max_tokens": max_tokens,
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

            await one(texts[0])  # warm-up, not counted
            return {c: await run_level(one, texts, c) for c in LEVELS}

    try:
        return asyncio.run(levels())
    finally:
        serve.shutdown()
        ray.shutdown()


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


def bare_side(settings, texts: list[str], max_tokens: int) -> dict[int, dict]:
    import os

    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from llama_rag.models import resolve_llm
    from services.llm import engine_env, engine_kwargs

    os.environ.update(engine_env(settings))
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)

    async def levels() -> dict[int, dict]:
        engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(model=resolve_llm(settings).path, **engine_kwargs(settings)))

        one = timed_generate(engine, params)
        try:
            await one(texts[0])  # warm-up, not counted
            return {c: await run_level(one, texts, c) for c in LEVELS}
        finally:
            engine.shutdown()

    return asyncio.run(levels())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", type=int, nargs="*", help="tuning: only these levels")
    parser.add_argument("--serve-only", action="store_true", help="tuning: skip the bare side")
    args = parser.parse_args()
    if args.levels or args.serve_only:
        LEVELS[:] = args.levels or CONCURRENCY

    from llama_rag.config import load_settings
    from llama_rag.models import apply_offline_policy

    settings = load_settings()
    apply_offline_policy(settings.models)
    texts = prompts(args.requests)
    print(f"{len(texts)} prompts per level, {args.max_tokens} output tokens each, "
          f"model {settings.llm.model_id}, engine {settings.llm.model_dump(include={'dtype', 'max_num_seqs', 'max_num_batched_tokens'})}")
    served = serve_side(settings, texts, args.max_tokens)
    if args.levels or args.serve_only:
        for c, r in served.items():
            print(f"c={c:<3} serve {r['output_tokens_per_s']:7.1f} tok/s  TTFT {r['mean_ttft_s']:.3f} s")
        if args.serve_only:
            return
    bare = bare_side(settings, texts, args.max_tokens)
    if args.levels:
        for c, r in bare.items():
            print(f"c={c:<3} bare  {r['output_tokens_per_s']:7.1f} tok/s  TTFT {r['mean_ttft_s']:.3f} s")
        return
    result = {"requests_per_level": len(texts), "max_tokens": args.max_tokens, "levels": {}}
    for c in CONCURRENCY:
        ratio = served[c]["output_tokens_per_s"] / bare[c]["output_tokens_per_s"]
        result["levels"][str(c)] = {"serve": served[c], "bare": bare[c], "ratio_serve_over_bare": ratio}
        for side, r in (("serve", served[c]), ("bare ", bare[c])):
            print(f"c={c:<3} {side} {r['requests_per_s']:6.2f} req/s  {r['output_tokens_per_s']:7.1f} tok/s  "
                  f"p50 {r['p50_latency_s']:6.2f} s  p95 {r['p95_latency_s']:6.2f} s  "
                  f"TTFT {r['mean_ttft_s']:6.3f} s")
        print(f"c={c:<3} ratio Serve / bare (output tokens/s): {ratio:.3f}")
    save("serve", result)
    labels = [f"{side} c={c}" for c in CONCURRENCY for side in ("serve", "bare")]
    bar_chart("serve", "Serve endpoint vs bare vLLM engine (CPU, SmolLM2-135M)", labels,
              {"output tokens/s": [result["levels"][str(c)][s]["output_tokens_per_s"]
                                   for c in CONCURRENCY for s in ("serve", "bare")]}, "")


if __name__ == "__main__":
    main()

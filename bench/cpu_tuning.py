"""vLLM CPU backend settings sweep: which engine env and arguments serve fastest here.

Each variant starts a fresh bare AsyncLLM in its own process (the CPU backend reads
its environment once, at start-up), sends the same prompts at one concurrency and
reports output tokens/s, time to first token and start-up time. The fastest
variant is what `LLMSettings`' CPU defaults are; docs/benchmarks.md has the table.

    python bench/cpu_tuning.py [--requests 32] [--concurrency 16] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402
from bench.serve import prompts, run_level, timed_generate  # noqa: E402

# name -> (env vars, settings.llm overrides); "base" is vLLM's own CPU defaults.
VARIANTS: dict[str, tuple[dict[str, str], dict]] = {
    "bind-auto": ({"VLLM_CPU_OMP_THREADS_BIND": "auto"}, {}),
    "nobind": ({"VLLM_CPU_OMP_THREADS_BIND": "nobind"}, {}),
    "bind-auto-reserve0": ({"VLLM_CPU_OMP_THREADS_BIND": "auto",
                            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}, {}),
    "bind-0-1": ({"VLLM_CPU_OMP_THREADS_BIND": "0-1"}, {}),
    "float32": ({"VLLM_CPU_OMP_THREADS_BIND": "auto"}, {"dtype": "float32"}),
    "tcmalloc": ({"VLLM_CPU_OMP_THREADS_BIND": "auto", "LD_PRELOAD": "TCMALLOC"}, {}),
    "seqs-256": ({"VLLM_CPU_OMP_THREADS_BIND": "auto"}, {"max_num_seqs": 256}),
    "kv-4g": ({"VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_CPU_KVCACHE_SPACE": "4"}, {}),
}
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def one_variant(overrides: dict, requests: int, concurrency: int, max_tokens: int) -> dict:
    """Runs in the child: start the engine, warm up, one concurrency level."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy, resolve_llm
    from llama_rag.engine import engine_kwargs

    settings = load_settings(None, {f"llm.{k}": v for k, v in overrides.items()})
    apply_offline_policy(settings.models)
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)

    async def go() -> dict:
        started = time.perf_counter()
        engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(model=resolve_llm(settings).path, **engine_kwargs(settings)))
        start_s = time.perf_counter() - started

        one = timed_generate(engine, params)
        try:
            await one("Warm-up:")
            level = await run_level(one, prompts(requests), concurrency)
        finally:
            engine.shutdown()
        return {**level, "engine_start_s": start_s}

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="variant names to run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = one_variant(json.loads(args.child), args.requests, args.concurrency,
                             args.max_tokens)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results: dict[str, dict] = {}
    for name, (env, overrides) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        child_env = {**os.environ, **{k: v.replace("TCMALLOC", TCMALLOC) for k, v in env.items()}}
        cmd = [sys.executable, __file__, "--child", json.dumps(overrides),
               "--requests", str(args.requests), "--concurrency", str(args.concurrency),
               "--max-tokens", str(args.max_tokens)]
        proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"{name}: failed (exit {proc.returncode}): {proc.stderr[-800:]}", flush=True)
            continue
        results[name] = {"env": env, "overrides": overrides, **json.loads(line[-1][7:])}
        r = results[name]
        print(f"{name:20s} {r['output_tokens_per_s']:7.1f} tok/s  TTFT {r['mean_ttft_s']:6.2f} s  "
              f"p50 {r['p50_latency_s']:6.2f} s  start {r['engine_start_s']:5.1f} s", flush=True)
    save("cpu-tuning", {"requests": args.requests, "concurrency": args.concurrency,
                        "max_tokens": args.max_tokens, "variants": results})
    bar_chart("cpu-tuning", f"vLLM CPU settings, bare engine, concurrency {args.concurrency}",
              list(results), {"output tokens/s": [r["output_tokens_per_s"]
                                                  for r in results.values()]}, "")


if __name__ == "__main__":
    main()

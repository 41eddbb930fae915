"""bfloat16 vs float32 for the vLLM CPU engine, on the prompts this platform sends.

RAG prompts (quoted chunks, ~800 tokens) and classification prompts are mostly
prefill; chat answers are mostly decoding. On a CPU without native bf16
(AVX512-BF16/AMX), bf16 matrix products are emulated: this times both phases in each
dtype, one fresh engine per dtype in its own process (prefix caching off, so every
prefill is real), and prints float32 / bfloat16 ratios. It is why `llm.dtype: auto`
picks float32 on such CPUs (llama_rag.engine.resolve_dtype).

    python bench/cpu_dtype.py [--prompt-chars 3000] [--decode-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

PAGE = Path("/usr/share/doc/python3.11/html/library/zipfile.html")


def one(dtype: str, prompt_chars: int, decode_tokens: int) -> dict:
    """Time prefill (1 output token) and prefill + decode, best of two, in this process."""
    from vllm import LLM, SamplingParams

    from llama_rag.config import load_settings
    from llama_rag.engine import engine_env
    from llama_rag.model_files import resolve_llm

    settings = load_settings()
    import os

    os.environ.update(engine_env(settings))
    llm = LLM(model=resolve_llm(settings).path, dtype=dtype, max_model_len=2048,
              enforce_eager=True, gpu_memory_utilization=0.2, max_num_batched_tokens=2048,
              enable_prefix_caching=False)
    text = " ".join(re.sub(r"<[^>]+>", " ", PAGE.read_text()).split())[:prompt_chars]
    chat = [{"role": "user", "content": f"{text}\nQuestion: How do I read a zip archive?"}]

    def seconds(tokens: int) -> tuple[float, int]:
        params = SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0)
        started = time.perf_counter()
        out = llm.chat(chat, params, use_tqdm=False)
        return time.perf_counter() - started, len(out[0].prompt_token_ids)

    seconds(1)  # warm-up
    prefill, prompt_tokens = min(seconds(1) for _ in range(2))
    whole, _ = min(seconds(decode_tokens) for _ in range(2))
    return {"dtype": dtype, "prompt_tokens": prompt_tokens, "prefill_s": round(prefill, 2),
            "prefill_tok_per_s": round(prompt_tokens / prefill, 1),
            "decode_tok_per_s": round((decode_tokens - 1) / max(whole - prefill, 1e-3), 1),
            "answer_s": round(whole, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-chars", type=int, default=3000)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one dtype (child process)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.prompt_chars, args.decode_tokens)))
        return
    rows = {}
    for dtype in ("bfloat16", "float32"):  # one engine per process: the CPU backend is global
        out = subprocess.run([sys.executable, __file__, "--one", dtype, "--prompt-chars",
                              str(args.prompt_chars), "--decode-tokens", str(args.decode_tokens)],
                             capture_output=True, text=True, check=True)
        rows[dtype] = json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])
    bf16, fp32 = rows["bfloat16"], rows["float32"]
    ratios = {"prefill_speed_fp32_over_bf16": round(fp32["prefill_tok_per_s"]
                                                    / bf16["prefill_tok_per_s"], 2),
              "decode_speed_fp32_over_bf16": round(fp32["decode_tok_per_s"]
                                                   / bf16["decode_tok_per_s"], 2),
              "answer_time_bf16_over_fp32": round(bf16["answer_s"] / fp32["answer_s"], 2)}
    print(f"{'dtype':<9} {'prompt tok':>10} {'prefill s':>9} {'prefill tok/s':>13} "
          f"{'decode tok/s':>12} {f'answer ({args.decode_tokens} tok) s':>18}")
    for r in rows.values():
        print(f"{r['dtype']:<9} {r['prompt_tokens']:>10} {r['prefill_s']:>9} "
              f"{r['prefill_tok_per_s']:>13} {r['decode_tok_per_s']:>12} {r['answer_s']:>18}")
    print(json.dumps(ratios))
    path = save("cpu-dtype", {"decode_tokens": args.decode_tokens, "rows": rows, **ratios})
    bar_chart("cpu-dtype", "vLLM CPU engine by dtype (higher is faster)", list(rows),
              {"prefill tok/s": [r["prefill_tok_per_s"] for r in rows.values()],
               "decode tok/s": [r["decode_tok_per_s"] for r in rows.values()]}, "tokens/s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

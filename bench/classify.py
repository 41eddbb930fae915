"""Bulk classification: naive transformers loops vs our job vs ray.data.llm, same rows, same prompt.

Rows: real Debian package descriptions labelled by Section (scripts/debian_packages.py),
6 labels with descriptions and 2 examples (examples/debian-*). Every path builds the
prompt with pipelines.classify_llm.messages_for and the same chat template:

- naive-b1: transformers `generate` one row at a time, answer mapped onto a label
- naive-b16: the same, 16 rows per left-padded batch
- job-choice / job-generate: pipelines.classify.run (Ray Data + vLLM actor)
- ray-data-llm: ray.data.llm's vLLM processor with guided choice

rows/s is measured after each path's model is loaded (`steady`: after the first
output batch); the job and ray.data.llm also report their total including engine
start-up, and with `--marginal` the rows/s between a run of N and one of 3N rows,
which cancels start-up and pipeline fill (ray.data.llm keeps many batches in flight,
so its first-batch timestamp flatters its steady rate). Accuracy against
the Debian section on the same rows.

    python bench/classify.py [--rows 400] [--naive-rows 100]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "examples" / "debian-sections.yaml"
SHOTS = ROOT / "examples" / "debian-shots.jsonl"


def spec():
    from llama_rag.prompts import PromptSpec
    from pipelines.classify_labels import load_examples, load_labels

    labels = load_labels(None, LABELS_FILE)
    return PromptSpec(labels=labels, examples=load_examples(SHOTS, labels))


def accuracy(pred: list[str | None], gold: list[str]) -> float:
    return round(sum(p == g for p, g in zip(pred, gold)) / len(gold), 4)


def naive(rows: list[dict], batch: int, settings) -> dict:
    """The loop people write first: transformers generate, a few tokens, map the words."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llama_rag.model_files import resolve_llm
    from pipelines.classify_llm import map_generated, messages_for

    path = resolve_llm(settings).path
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16).eval()
    s = spec()
    prompts = [tok.apply_chat_template(messages_for(s, r["text"]), tokenize=False,
                                       add_generation_prompt=True) for r in rows]
    preds: list[str | None] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
            out = model.generate(**enc, max_new_tokens=4, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
            texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            preds += [map_generated(t, s.labels.labels) for t in texts]
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "steady_rows_per_s": round(len(rows) / seconds, 2),
            "accuracy": accuracy(preds, [r["section"] for r in rows]),
            "unmapped": sum(p is None for p in preds)}


def job(csv_path: Path, mode: str, settings, rows: int) -> dict:
    from pipelines.classify import ClassifyArgs, run

    out = Path(tempfile.mkdtemp(prefix=f"bench-classify-{mode}-"))
    shutil.rmtree(out)
    args = ClassifyArgs(input=str(csv_path), text_column="text", id_column="id",
                        labels_file=LABELS_FILE, examples=SHOTS, gold_column="section",
                        output=out, mode=mode, batch_size=64)
    summary = run(args, settings, echo=lambda m: None)
    return {"rows": summary.input, "steady_rows_per_s": summary.steady_rows_per_s,
            "total_rows_per_s": summary.rows_per_s, "startup_s": summary.startup_s,
            # unmapped rows count as wrong, as they do for every other path
            "accuracy": round(summary.metrics.accuracy * summary.labeled / summary.input, 4)
            if summary.metrics else None,
            "accuracy_of_labeled_rows": summary.metrics.accuracy if summary.metrics else None,
            "unmapped": summary.unmapped, "labeled": summary.labeled, "errors": summary.errors}


def ray_data_llm(rows: list[dict], settings) -> dict:
    """Ray's own batch LLM processor with guided choice (the RUNTIME_NOTES configuration)."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from llama_rag.model_files import resolve_llm
    from pipelines.classify_llm import messages_for
    from llama_rag.engine import engine_env, engine_kwargs

    s = spec()
    config = vLLMEngineProcessorConfig(
        model_source=resolve_llm(settings).path, engine_kwargs=engine_kwargs(settings),
        runtime_env={"env_vars": engine_env(settings)}, batch_size=64, concurrency=1,
        placement_group_config={"bundles": [{"CPU": 1}]})
    processor = build_processor(
        config,
        preprocess=lambda row: dict(messages=messages_for(s, row["text"]), sampling_params=dict(
            temperature=0, max_tokens=8, structured_outputs={"choice": s.labels.labels})),
        postprocess=lambda row: dict(label=row["generated_text"].strip(), gold=row["section"]))
    ds = ray.data.from_items(rows)
    started = time.perf_counter()
    first = None
    preds, gold = [], []
    for batch in processor(ds).iter_batches(batch_size=None):
        if first is None:
            first, first_rows = time.perf_counter(), len(batch["label"])
        preds += list(batch["label"])
        gold += list(batch["gold"])
    ended = time.perf_counter()
    return {"rows": len(rows), "total_rows_per_s": round(len(rows) / (ended - started), 2),
            "steady_rows_per_s": round((len(rows) - first_rows) / (ended - first), 2)
            if len(rows) > first_rows else None, "startup_s": round(first - started, 2),
            "accuracy": accuracy(preds, gold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400, help="rows for the job paths")
    parser.add_argument("--naive-rows", type=int, default=100,
                        help="first rows for the naive loops (they are slow)")
    parser.add_argument("--skip", nargs="*", default=[], help="paths to skip")
    parser.add_argument("--marginal", action="store_true",
                        help="also run job-choice and ray-data-llm on 3x the rows")
    args = parser.parse_args()

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy
    from llama_rag.ray_runtime import ensure_ray

    settings = load_settings()
    apply_offline_policy(settings.models)
    work = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    data = work / "packages.csv"
    import subprocess

    subprocess.run([sys.executable, str(ROOT / "scripts" / "debian_packages.py"), str(data),
                    "--rows", str(args.rows)], check=True)
    with open(data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    results: dict[str, dict] = {}

    def record(name: str, fn) -> None:
        if name in args.skip:
            return
        results[name] = fn()
        print(f"{name:14s} {results[name]}", flush=True)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    record("naive-b1", lambda: naive(rows[: args.naive_rows], 1, settings))
    record("naive-b16", lambda: naive(rows[: args.naive_rows], 16, settings))
    # ray.data.llm runs 4 actor stages (chat template, tokenize, engine, detokenize) of one
    # logical CPU each; with fewer than ~6 logical CPUs its map tasks starve and it stalls.
    ensure_ray(max(8, settings.ray.num_cpus or 0))
    record("job-choice", lambda: job(data, "choice", settings, args.rows))
    record("job-generate", lambda: job(data, "generate", settings, args.rows))
    record("ray-data-llm", lambda: ray_data_llm(rows, settings))
    if args.marginal:
        # rows/s from the difference of two runs (N and 3N rows): start-up and pipeline
        # fill cancel out, which a first-batch timestamp cannot do for a deep pipeline
        big = work / "packages-3x.csv"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "debian_packages.py"), str(big),
                        "--rows", str(3 * args.rows)], check=True)
        with open(big, newline="") as fh:
            big_rows = list(csv.DictReader(fh))
        for name, fn in (("job-choice", lambda: job(big, "choice", settings, 3 * args.rows)),
                         ("ray-data-llm", lambda: ray_data_llm(big_rows, settings))):
            if name not in results:
                continue
            small = results[name]
            large = fn()
            t_small = small["rows"] / small["total_rows_per_s"]
            t_large = large["rows"] / large["total_rows_per_s"]
            small["marginal_rows_per_s"] = round((large["rows"] - small["rows"]) / (t_large - t_small), 2)
            small["run_3x"] = large
            print(f"{name:14s} marginal {small['marginal_rows_per_s']} rows/s "
                  f"({small['rows']} -> {large['rows']} rows)", flush=True)
    base = results.get("naive-b1", {}).get("steady_rows_per_s")

    def rate(r: dict) -> float | None:  # the fairest rows/s a path has
        return r.get("marginal_rows_per_s") or r.get("steady_rows_per_s")
    ratios = {name: round(rate(r) / base, 2) for name, r in results.items() if base and rate(r)}
    print("rows/s relative to naive-b1 (marginal where measured, else steady):", ratios)
    save("classify", {"rows": args.rows, "naive_rows": args.naive_rows,
                      "data": "Debian package descriptions, 6 sections (scripts/debian_packages.py)",
                      "paths": results, "ratio_over_naive_b1": ratios})
    names = list(results)
    bar_chart("classify", "Classification: rows/s (steady) and accuracy, same rows and prompt",
              names, {"rows/s": [rate(results[n]) or 0 for n in names],
                      "accuracy": [results[n].get("accuracy") or 0 for n in names]}, "")


if __name__ == "__main__":
    main()

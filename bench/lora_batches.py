"""LoRA training speed: batches of rows grouped by length (pipelines.finetune_train's
``length_grouped``) against batches of consecutive shuffled rows (the loop before it),
on the same rows, the same model start and the same number of steps, in one process.

For each label set (fortunes, Debian descriptions), ``--rows`` shuffled training rows;
each path trains one pass over them twice, in the order A B B A from the same model
start (batch 8, float32 on this CPU), and reports rows/s over both passes and the
tokens its batches padded to against the tokens the rows hold.

    python bench/lora_batches.py [--rows 96] [--sets fortunes,debian]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.finetune import label_rows  # noqa: E402
from bench.report import save, scratch_settings  # noqa: E402


def _model(path: str):
    import torch

    from pipelines.finetune_args import FinetuneArgs
    from pipelines.finetune_train import _lora_model

    torch.manual_seed(0)
    defaults = FinetuneArgs.model_fields
    return _lora_model({"model_path": path, "lora_rank": defaults["lora_rank"].default,
                        "lora_alpha": defaults["lora_alpha"].default,
                        "target_modules": defaults["target_modules"].default.split(",")},
                       torch.device("cpu"))


def _train(model, batches: list[list[tuple[list[int], list[int]]]], pad: int) -> dict:
    import torch

    from pipelines.finetune_data import collate
    from pipelines.finetune_train import answer_loss

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    started, rows, padded, held = time.perf_counter(), 0, 0, 0
    for pairs in batches:
        batch = collate(pairs, pad)
        answer_loss(model, batch, "cpu").backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        rows += len(pairs)
        padded += len(batch.input_ids) * len(batch.input_ids[0])
        held += sum(len(p) + len(a) for p, a in pairs)
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds, 2),
            "padded_over_held_tokens": round(padded / held, 3)}


def run_set(name: str, n: int, model_path: str) -> dict:
    import pandas as pd
    from transformers import AutoTokenizer

    from llama_rag.prompts import PromptSpec
    from pipelines.classify_labels import load_labels
    from pipelines.finetune_args import FinetuneArgs
    from pipelines.finetune_data import Row, encode
    from pipelines.finetune_train import length_grouped

    data, flags = label_rows(name)
    random.Random(0).shuffle(data)
    rows = [Row(id=str(r["id"]), text=r["text"], target=r["label"]) for r in data[:n]]
    labels = load_labels(flags.get("labels"), flags.get("labels_file"))
    spec = PromptSpec(labels=labels, instructions=FinetuneArgs.model_fields["instructions"].default,
                      calibrate=False, max_text_tokens=256)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad = tokenizer.pad_token_id or 0
    pairs = [encode(tokenizer, r, spec, 256) for r in rows]
    plain = [pairs[i:i + 8] for i in range(0, n, 8)]
    frame = pd.DataFrame([r.model_dump() for r in rows])
    config = {"batch_size": 8, "spec": spec, "max_text_tokens": 256}
    grouped = [p for _, p in length_grouped([frame], tokenizer, config, seed=0)]
    # A B B A: each path once early and once late, so drift on a shared host cancels
    runs = {"consecutive": [], "length-grouped": []}
    for path in ("consecutive", "length-grouped", "length-grouped", "consecutive"):
        runs[path].append(_train(_model(model_path), plain if path == "consecutive" else grouped, pad))
    out = {path: {"rows": sum(r["rows"] for r in got),
                  "seconds": round(sum(r["seconds"] for r in got), 1),
                  "rows_per_s": round(sum(r["rows"] for r in got) / sum(r["seconds"] for r in got), 2),
                  "padded_over_held_tokens": got[0]["padded_over_held_tokens"]}
           for path, got in runs.items()}
    out["speedup"] = round(out["length-grouped"]["rows_per_s"] / out["consecutive"]["rows_per_s"], 2)
    print(f"{name}: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--sets", default="fortunes,debian")
    args = parser.parse_args()
    _, settings = scratch_settings("lora-batches-")
    from llama_rag.model_files import prepare_llm

    model_path = str(prepare_llm(settings))
    results = {name: run_set(name, args.rows, model_path) for name in args.sets.split(",")}
    print("speed-up (length-grouped over consecutive rows/s): "
          + ", ".join(f"{k} {v['speedup']}x" for k, v in results.items()))
    save("lora-batches", {"rows": args.rows, "results": results})


if __name__ == "__main__":
    main()

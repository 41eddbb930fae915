"""Which classifier when: prompting, kNN examples, a LoRA adapter, an embedding head,
and scikit-learn on the same embeddings, against labeled rows per label.

Rows: real Debian package descriptions labelled by Section (scripts/debian_packages.py,
6 sections). A held-out test split (``--test-per-label`` rows of each section) is
never trained on and never used as an example; training sets of N rows per label come
from the rest. Every LLM path runs our classification job (pipelines.classify:
Ray Data + vLLM), every trained path our fine-tuning job (pipelines.finetune), in
this one process run:

- (a) choice: today's choice mode, calibrated, the 2 fixed examples (no labeled rows)
- (b) knn-examples: choice mode with the 4 nearest of the N labeled rows as examples
- (c) lora: a LoRA adapter trained on the N rows (Ray Train), classified with it (on
  the CPU the job merges it into a copy of the model; ``lora-vllm-unmerged`` is vLLM's
  own LoRA on 120 rows, for the speed comparison)
- (d) embedding-head: a linear head on MiniLM trained on the N rows, classified in the job
- (e) sklearn-logreg: scikit-learn LogisticRegression on the same MiniLM embeddings

plus the base model in choice mode on the adapter's own prompt (no examples, not
calibrated) as the rows/s baseline for the adapter, and training rows/s with 1 and
2 Ray Train workers. Accuracy is over all test rows.

    python bench/finetune.py [--per-label 8,32,128] [--lora-per-label 8,32,128]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "examples" / "debian-sections.yaml"
SHOTS = ROOT / "examples" / "debian-shots.jsonl"


def split(test_per_label: int, seed: int = 0) -> tuple[list[dict], dict[str, list[dict]]]:
    """(test rows, the other rows by section), shuffled with ``seed``."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from debian_packages import SECTIONS, rows

    data = rows(6000, SECTIONS)
    random.Random(seed).shuffle(data)
    test, pool = [], defaultdict(list)
    taken: dict[str, int] = defaultdict(int)
    for r in data:
        if taken[r["section"]] < test_per_label:
            test.append(r)
            taken[r["section"]] += 1
        else:
            pool[r["section"]].append(r)
    return test, pool


def write_csv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "section"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def classify(test_csv: Path, settings, **kw) -> dict:
    from pipelines.classify import ClassifyArgs, run

    out = Path(tempfile.mkdtemp(prefix="bench-ft-classify-"))
    shutil.rmtree(out)
    base = dict(input=str(test_csv), text_column="text", id_column="id", gold_column="section",
                output=out, batch_size=64)
    if not kw.get("adapter"):
        base["labels_file"] = LABELS_FILE
    summary = run(ClassifyArgs(**{**base, **kw}), settings, echo=lambda m: None)
    return {"accuracy": round(summary.metrics.accuracy * summary.labeled / summary.input, 4),
            "steady_rows_per_s": summary.steady_rows_per_s, "rows_per_s": summary.rows_per_s,
            "startup_s": summary.startup_s, "rows": summary.input}


def finetune(train_csv: Path, name: str, settings, **kw) -> dict:
    from pipelines.finetune_args import FinetuneArgs
    from pipelines.finetune import run

    args = FinetuneArgs(input=[str(train_csv)], name=name, text_column="text",
                        label_column="section", labels_file=LABELS_FILE, eval_fraction=0.0, **kw)
    s = run(args, settings, echo=lambda m: print(f"  {m}", flush=True))
    return {"version": s.version, "steps": s.steps, "train_loss": s.train_loss,
            "train_rows_per_s": s.train_rows_per_s, "seconds": s.seconds}


def sklearn_reference(train: list[dict], test: list[dict], settings) -> dict:
    from sklearn.linear_model import LogisticRegression

    from indexing.embedder import resolve_embedder
    from indexing.embedder import job_embedder

    embedder = job_embedder(resolve_embedder(settings), settings)
    x_train = embedder.encode([r["text"] for r in train])
    started = time.perf_counter()
    x_test = embedder.encode([r["text"] for r in test])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, [r["section"] for r in train])
    predicted = model.predict(x_test)
    seconds = time.perf_counter() - started
    correct = sum(p == r["section"] for p, r in zip(predicted, test))
    return {"accuracy": round(correct / len(test), 4),
            "rows_per_s_in_process": round(len(test) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", default="8,32,128,512")
    parser.add_argument("--lora-per-label", default="8,32,128")
    parser.add_argument("--knn-per-label", default="32,128")
    parser.add_argument("--test-per-label", type=int, default=100)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip")
    args = parser.parse_args()

    import os

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    os.environ["LLAMA_RAG_ADAPTERS__DIR"] = str(work / "adapters")
    os.environ["LLAMA_RAG_ADAPTERS__CHECKPOINTS"] = str(work / "runs")
    settings = load_settings()
    apply_offline_policy(settings.models)
    test, pool = split(args.test_per_label)
    test_csv = write_csv(test, work / "test.csv")
    results: dict[str, dict] = defaultdict(dict)

    def record(method: str, n: int | str, fn) -> None:
        if method in args.skip:
            return
        started = time.perf_counter()
        results[method][str(n)] = {**fn(), "wall_s": round(time.perf_counter() - started, 1)}
        print(f"{method:16s} {str(n):>4s} {results[method][str(n)]}", flush=True)
        save("finetune", {"partial": True, "results": results})  # a crash keeps what ran

    record("choice", "fixed", lambda: classify(test_csv, settings, examples=SHOTS))
    for n in [int(v) for v in args.per_label.split(",")]:
        train = [r for rows in pool.values() for r in rows[:n]]
        train_csv = write_csv(train, work / f"train-{n}.csv")
        record("sklearn-logreg", n, lambda: sklearn_reference(train, test, settings))

        def head() -> dict:
            trained = finetune(train_csv, f"head-{n}", settings, method="embedding-head")
            return {**classify(test_csv, settings, adapter=f"head-{n}"), "train": trained}
        record("embedding-head", n, head)
        if str(n) in args.lora_per_label.split(","):
            def lora() -> dict:
                epochs = max(args.epochs, round(256 / len(train), 1))  # small sets: more passes
                trained = finetune(train_csv, f"lora-{n}", settings, epochs=epochs,
                                   batch_size=8, cpus_per_worker=2)
                return {**classify(test_csv, settings, adapter=f"lora-{n}"), "train": trained}
            record("lora", n, lora)
            if n == max(int(v) for v in args.lora_per_label.split(",")) and "lora" not in args.skip:
                # vLLM's own LoRA on the CPU instead of the merged copy: 120 rows are enough
                unmerged = settings.model_copy(update={"adapters": settings.adapters.model_copy(
                    update={"merge_for_jobs": "never"})})
                record("lora-vllm-unmerged", n, lambda: classify(
                    test_csv, unmerged, adapter=f"lora-{n}", max_rows=120))
        if str(n) in args.knn_per_label.split(","):
            shots = work / f"shots-{n}.jsonl"
            shots.write_text("".join(json.dumps({"text": r["text"], "label": r["section"]}) + "\n"
                                     for r in train))
            record("knn-examples", n, lambda: classify(test_csv, settings, examples=shots,
                                                       examples_k=4))
    # the adapter's rows/s baseline: the base model on the adapter's prompt
    record("base-choice", "adapter-prompt", lambda: classify(test_csv, settings, calibrate=False))
    train = [r for rows in pool.values() for r in rows[:32]]
    train_csv = write_csv(train, work / "train-speed.csv")
    for workers in (1, 2):
        record("train-speed", f"{workers}w", lambda: finetune(
            train_csv, f"speed-{workers}", settings, max_steps=12, batch_size=8 // workers,
            workers=workers, cpus_per_worker=2 // workers))
    lora_rate = (results.get("lora", {}).get("128") or {}).get("steady_rows_per_s")
    base_rate = (results.get("base-choice", {}).get("adapter-prompt") or {}).get("steady_rows_per_s")
    ratio = round(lora_rate / base_rate, 2) if lora_rate and base_rate else None
    print(f"lora-128 classification rows/s over the base model's: {ratio}")
    save("finetune", {"data": "Debian package descriptions, 6 sections (scripts/debian_packages.py)",
                      "test_rows": len(test), "results": results,
                      "lora_over_base_rows_per_s": ratio})
    chart(results)
    shutil.rmtree(work, ignore_errors=True)


def chart(results: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report import RESULTS

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method in ("lora", "embedding-head", "sklearn-logreg", "knn-examples"):
        points = sorted((int(n), r["accuracy"]) for n, r in results.get(method, {}).items())
        if points:
            ax.plot(*zip(*points), marker="o", label=method)
    fixed = results.get("choice", {}).get("fixed")
    if fixed:
        ax.axhline(fixed["accuracy"], color="grey", linestyle="--", label="choice (2 fixed examples)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labeled training rows per label")
    ax.set_ylabel("accuracy on held-out rows")
    ax.set_title("Debian sections (6 labels): accuracy by method", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "finetune.png", dpi=110)


if __name__ == "__main__":
    main()

"""Skewed labeled rows: `--class-weight balanced` against none, for the embedding head
and LoRA (our jobs) and for scikit-learn's LogisticRegression (the reference), in one run.

Users label what they have, and what they have is rarely balanced. Here each label set
(Debian sections and fortune files, as bench/finetune.py) gets a training set whose
labels have 2x fewer rows each than the one before (``--counts``, e.g. 256..8: the rarest
label has 32x fewer rows than the commonest; which label gets which count is a seeded
draw), and a balanced test split (``--test-per-label`` rows of each label) never trained
on. Every label matters equally on the test split, so the figure is macro-F1 (and the
rare labels' recall); accuracy is shown too. Our paths run the fine-tuning job and the
classification job; the reference fits scikit-learn on the same MiniLM embeddings.

    python bench/class_weight.py [--sets debian,fortunes] [--counts 256,128,64,32,16,8]
        [--lora-sets debian] [--lora-counts 128,64,32,16,8,4]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.finetune import finetune, label_rows, split, write_csv  # noqa: E402
from bench.report import save, scratch_settings  # noqa: E402


def skewed(pool: dict[str, list[dict]], counts: list[int], seed: int = 0) -> list[dict]:
    """Training rows: the i-th label of a seeded order gets ``counts[i]`` rows."""
    order = sorted(pool)
    random.Random(seed).shuffle(order)
    return [r for label, n in zip(order, counts) for r in pool[label][:n]]


def figures(m, rare: list[str]) -> dict:
    """Accuracy, macro-F1 and the rare labels' mean recall of a classify Metrics."""
    return {"accuracy": m.accuracy, "macro_f1": round(m.macro_f1, 4),
            "rare_recall": round(sum(m.per_label[k]["recall"] for k in rare) / len(rare), 4)}


def ours(train_csv: Path, test_csv: Path, name: str, settings, labels: dict, rare: list[str],
         **kw) -> dict:
    """Our fine-tuning job on the skewed rows, then our classification job on the test split."""
    from pipelines.classify import ClassifyArgs, run

    fitted = finetune(train_csv, name, settings, labels, **kw)
    out = Path(tempfile.mkdtemp(prefix="bench-cw-"))
    shutil.rmtree(out)
    summary = run(ClassifyArgs(input=str(test_csv), text_column="text", id_column="id",
                               gold_column="label", output=out, batch_size=64, adapter=name),
                  settings, echo=lambda m: None)
    shutil.rmtree(out, ignore_errors=True)
    assert summary.labeled == summary.input, summary  # every test row counted
    return {**figures(summary.metrics, rare), "train_seconds": fitted["seconds"]}


def reference(train: list[dict], test: list[dict], settings, rare: list[str],
              class_weight: str | None) -> dict:
    from sklearn.linear_model import LogisticRegression

    from indexing.embedder import job_embedder, resolve_embedder
    from pipelines.classify_metrics import metrics

    embedder = job_embedder(resolve_embedder(settings), settings)
    model = LogisticRegression(C=1.0, max_iter=1000, class_weight=class_weight).fit(
        embedder.encode([r["text"] for r in train]), [r["label"] for r in train])
    predicted = model.predict(embedder.encode([r["text"] for r in test]))
    return figures(metrics(list(predicted), [r["label"] for r in test]), rare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="debian,fortunes")
    parser.add_argument("--counts", default="256,128,64,32,16,8")
    parser.add_argument("--lora-sets", default="debian", help="'' for none")
    parser.add_argument("--lora-counts", default="128,64,32,16,8,4")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--test-per-label", type=int, default=100)
    args = parser.parse_args()

    work, settings = scratch_settings("bench-class-weight-")
    results: dict[str, dict] = {}
    ratios: list[str] = []
    for set_name in args.sets.split(","):
        data, labels = label_rows(set_name)
        test, pool = split(data, args.test_per_label)
        test_csv = write_csv(test, work / f"{set_name}-test.csv")
        got: dict[str, dict] = {}
        results[set_name] = got
        runs = [("counts", [int(v) for v in args.counts.split(",")], ("sklearn", "head"))]
        if set_name in args.lora_sets.split(","):
            runs.append(("lora_counts", [int(v) for v in args.lora_counts.split(",")], ("lora",)))
        for key, counts, methods in runs:
            train = skewed(pool, counts)
            order = sorted(pool)
            random.Random(0).shuffle(order)
            rare = order[len(counts) // 2:]  # the rarer half of the labels
            train_csv = write_csv(train, work / f"{set_name}-{key}.csv")
            for method in methods:
                for weight in ("none", "balanced"):
                    started = time.perf_counter()
                    if method == "sklearn":
                        row = reference(train, test, settings, rare,
                                        "balanced" if weight == "balanced" else None)
                    else:
                        kw = {"method": "embedding-head"} if method == "head" else {
                            "method": "lora", "epochs": args.epochs, "batch_size": 8,
                            "cpus_per_worker": 2}
                        row = ours(train_csv, test_csv, f"{set_name}-{method}-{weight}",
                                   settings, labels, rare, class_weight=weight, **kw)
                    row.update(counts=dict(zip(order, counts)), train_rows=len(train),
                               wall_s=round(time.perf_counter() - started, 1))
                    got[f"{method}/{weight}"] = row
                    print(f"{set_name:9s} {method:8s} {weight:9s} {row}", flush=True)
                    save("class-weight", {"partial": True, "results": results})
                plain, balanced = got[f"{method}/none"], got[f"{method}/balanced"]
                line = (f"{set_name} {method}: macro-F1 balanced/none "
                        f"{balanced['macro_f1']:.3f}/{plain['macro_f1']:.3f} = "
                        f"{balanced['macro_f1'] / max(plain['macro_f1'], 1e-9):.2f}x; rare-label "
                        f"recall {balanced['rare_recall']:.3f}/{plain['rare_recall']:.3f}; "
                        f"accuracy {balanced['accuracy']:.3f}/{plain['accuracy']:.3f}")
                ratios.append(line)
                print(line, flush=True)
    save("class-weight", {"test_rows_per_label": args.test_per_label, "counts": args.counts,
                          "lora_counts": args.lora_counts, "results": results, "ratios": ratios})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Which classifier when: prompting, kNN examples, a LoRA adapter, an embedding head,
`--method auto`, and scikit-learn on the same embeddings, against labeled rows per label,
on two real label sets.

Label sets: Debian package descriptions by Section (scripts/debian_packages.py, 6
sections) and fortune cookies by file (scripts/fortunes.py, 6 files). For each, a
held-out test split (``--test-per-label`` rows of each label) is never trained on and
never used as an example; training sets of N rows per label come from the rest. Every
LLM path runs our classification job (pipelines.classify: Ray Data + vLLM), every
trained path our fine-tuning job (pipelines.finetune), in this one process run:

- (a) choice: choice mode, calibrated (Debian: its 2 fixed examples; no labeled rows)
- (b) knn-examples: choice mode with the 4 nearest of the N labeled rows as examples
- (c) lora: a LoRA adapter trained on the N rows (Ray Train), classified with it
- (d) embedding-head: a linear head on MiniLM trained on the N rows, classified in the job
- (e) auto: `finetune --method auto` on the N rows (a 20% validation split, LoRA only
  where it fits ``--budget-minutes``), classified with what it published
- (f) sklearn-logreg: scikit-learn LogisticRegression on the same MiniLM embeddings

With ``--speed`` (Debian only) also the base model in choice mode on the adapter's own
prompt (the rows/s baseline for the adapter), vLLM's unmerged LoRA on 120 rows, and
training rows/s with 1 and 2 Ray Train workers. Accuracy is over all test rows.

    python bench/finetune.py [--sets debian,fortunes] [--per-label 8,32,128,512]
        [--lora-per-label 128] [--knn-per-label 128] [--budget-minutes 45] [--speed]
        [--skip METHOD...] [--name RESULTS]
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

from bench.report import save, scratch_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS_FILE = ROOT / "examples" / "debian-sections.yaml"
SHOTS = ROOT / "examples" / "debian-shots.jsonl"


def label_rows(name: str) -> tuple[list[dict], dict]:
    """(rows of id/text/label, the label flags of the jobs) of a label set."""
    sys.path.insert(0, str(ROOT / "scripts"))
    if name == "debian":
        from debian_packages import SECTIONS, rows

        data = [{"id": r["id"], "text": r["text"], "label": r["section"]}
                for r in rows(6000, SECTIONS)]
        return data, {"labels_file": LABELS_FILE}
    from fortunes import FILES, rows as fortune_rows

    return fortune_rows(100_000, FILES), {"labels": ",".join(FILES)}


def split(data: list[dict], test_per_label: int, seed: int = 0
          ) -> tuple[list[dict], dict[str, list[dict]]]:
    """(test rows, the other rows by label), shuffled with ``seed``."""
    data = list(data)
    random.Random(seed).shuffle(data)
    test, pool = [], defaultdict(list)
    taken: dict[str, int] = defaultdict(int)
    for r in data:
        if taken[r["label"]] < test_per_label:
            test.append(r)
            taken[r["label"]] += 1
        else:
            pool[r["label"]].append(r)
    return test, pool


def write_csv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def classify(test_csv: Path, settings, labels: dict, **kw) -> dict:
    from pipelines.classify import ClassifyArgs, run

    out = Path(tempfile.mkdtemp(prefix="bench-ft-classify-"))
    shutil.rmtree(out)
    base = dict(input=str(test_csv), text_column="text", id_column="id", gold_column="label",
                output=out, batch_size=64)
    if not kw.get("adapter"):
        base.update(labels)
    summary = run(ClassifyArgs(**{**base, **kw}), settings, echo=lambda m: None)
    return {"accuracy": round(summary.metrics.accuracy * summary.labeled / summary.input, 4),
            "steady_rows_per_s": summary.steady_rows_per_s, "rows_per_s": summary.rows_per_s,
            "startup_s": summary.startup_s, "rows": summary.input}


def finetune(train_csv: Path, name: str, settings, labels: dict, **kw) -> dict:
    from pipelines.finetune_args import FinetuneArgs
    from pipelines.finetune import run

    args = FinetuneArgs(input=[str(train_csv)], name=name, text_column="text",
                        label_column="label", **labels, **{"eval_fraction": 0.0, **kw})
    s = run(args, settings, echo=lambda m: print(f"  {m}", flush=True))
    out = {"version": s.version, "steps": s.steps, "train_loss": s.train_loss,
           "train_rows_per_s": s.train_rows_per_s, "seconds": s.seconds}
    if s.chosen:
        out.update(chosen=s.chosen, chosen_because=s.chosen_because, candidates=s.candidates)
    return out


def sklearn_reference(train: list[dict], test: list[dict], settings) -> dict:
    from sklearn.linear_model import LogisticRegression

    from indexing.embedder import resolve_embedder
    from indexing.embedder import job_embedder

    embedder = job_embedder(resolve_embedder(settings), settings)
    x_train = embedder.encode([r["text"] for r in train])
    started = time.perf_counter()
    x_test = embedder.encode([r["text"] for r in test])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, [r["label"] for r in train])
    predicted = model.predict(x_test)
    seconds = time.perf_counter() - started
    correct = sum(p == r["label"] for p, r in zip(predicted, test))
    return {"accuracy": round(correct / len(test), 4),
            "rows_per_s_in_process": round(len(test) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="debian,fortunes")
    parser.add_argument("--per-label", default="8,32,128,512")
    parser.add_argument("--lora-per-label", default="128")
    parser.add_argument("--knn-per-label", default="128")
    parser.add_argument("--test-per-label", type=int, default=100)
    parser.add_argument("--epochs", type=float, default=None,
                        help="LoRA epochs (default: the job's; more for sets under 128 rows)")
    parser.add_argument("--budget-minutes", type=float, default=45.0,
                        help="auto's time budget (the job's default is 20 min: too short "
                        "for LoRA's epochs on long texts, docs/finetune.md)")
    parser.add_argument("--speed", action="store_true", help="the Debian speed figures too")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip")
    parser.add_argument("--name", default=None,
                        help="results file under bench/results (default: finetune for the "
                        "whole default run, else finetune-SETS-SIZES, so a partial run "
                        "does not replace the full one)")
    args = parser.parse_args()
    whole = (args.sets, args.per_label, args.skip) == (
        parser.get_default("sets"), parser.get_default("per_label"), [])
    part = f"{args.sets}-{args.per_label}".replace(",", "-")
    args.name = args.name or ("finetune" if whole else f"finetune-{part}")

    work, settings = scratch_settings("bench-finetune-")
    results: dict[str, dict[str, dict]] = {}
    sizes = [int(v) for v in args.per_label.split(",")]
    for set_name in args.sets.split(","):
        data, labels = label_rows(set_name)
        test, pool = split(data, args.test_per_label)
        test_csv = write_csv(test, work / f"{set_name}-test.csv")
        results[set_name] = run_set(set_name, test, pool, test_csv, labels, sizes, args, settings,
                                    work, results)
    summary = verdicts(results)
    for line in summary:
        print(line)
    save(args.name, {"sets": {"debian": "Debian package descriptions, 6 sections "
                               "(scripts/debian_packages.py)",
                               "fortunes": "fortune cookies, 6 files (scripts/fortunes.py)"},
                      "test_rows_per_label": args.test_per_label, "results": results,
                      "auto_verdicts": summary})
    chart(results, args.name)
    shutil.rmtree(work, ignore_errors=True)


def run_set(set_name: str, test: list[dict], pool: dict[str, list[dict]], test_csv: Path,
            labels: dict, sizes: list[int], args, settings, work: Path,
            everything: dict) -> dict[str, dict]:
    """Every method on one label set; saved after each, so a crash keeps what ran."""
    from pipelines.finetune_args import EPOCHS_UNJUDGED

    results: dict[str, dict] = defaultdict(dict)
    everything[set_name] = results

    def record(method: str, n: int | str, fn) -> None:
        if method in args.skip:
            return
        started = time.perf_counter()
        try:
            got = fn()
        except Exception as exc:  # one method's failure is a result, not the end of the run
            got = {"error": f"{type(exc).__name__}: {exc}"}
        results[method][str(n)] = {**got, "wall_s": round(time.perf_counter() - started, 1)}
        print(f"{set_name:9s} {method:16s} {str(n):>4s} {results[method][str(n)]}", flush=True)
        save(args.name, {"partial": True, "results": everything})

    shots = {"examples": SHOTS} if set_name == "debian" else {}
    record("choice", "fixed", lambda: classify(test_csv, settings, labels, **shots))
    for n in sizes:
        train = [r for rows in pool.values() for r in rows[:n]]
        train_csv = write_csv(train, work / f"{set_name}-train-{n}.csv")
        record("sklearn-logreg", n, lambda: sklearn_reference(train, test, settings))

        def trained(kind: str, **kw) -> dict:
            name = f"{set_name}-{kind}-{n}"
            fitted = finetune(train_csv, name, settings, labels, **kw)
            return {**classify(test_csv, settings, labels, adapter=name), "train": fitted}

        record("embedding-head", n, lambda: trained("embedding-head", method="embedding-head"))
        passes = round(256 / len(train), 1)  # small sets: more passes than the default
        epochs = args.epochs or (passes if passes > EPOCHS_UNJUDGED else None)
        lora = dict(batch_size=8, cpus_per_worker=2, **({"epochs": epochs} if epochs else {}))
        record("auto", n, lambda: trained("auto", method="auto", eval_fraction=0.2,
                                          budget_minutes=args.budget_minutes, **lora))
        if str(n) in args.lora_per_label.split(","):
            record("lora", n, lambda: trained("lora", **lora))
        if str(n) in args.knn_per_label.split(","):
            examples = work / f"{set_name}-shots-{n}.jsonl"
            examples.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]})
                                        + "\n" for r in train))
            record("knn-examples", n, lambda: classify(test_csv, settings, labels,
                                                       examples=examples, examples_k=4))
    if args.speed and set_name == "debian":
        speed(results, record, pool, test_csv, labels, settings, work, args)
    return dict(results)


def speed(results, record, pool, test_csv, labels, settings, work, args) -> None:
    """The adapter's rows/s against the base model's, vLLM's unmerged LoRA, Train rows/s."""
    n = max(int(v) for v in args.lora_per_label.split(","))
    unmerged = settings.model_copy(update={"adapters": settings.adapters.model_copy(
        update={"merge_for_jobs": "never"})})
    record("lora-vllm-unmerged", n, lambda: classify(
        test_csv, unmerged, labels, adapter=f"debian-lora-{n}", max_rows=120))
    record("base-choice", "adapter-prompt", lambda: classify(test_csv, settings, labels,
                                                             calibrate=False))
    train = [r for rows in pool.values() for r in rows[:32]]
    train_csv = write_csv(train, work / "train-speed.csv")
    for workers in (1, 2):
        record("train-speed", f"{workers}w", lambda: finetune(
            train_csv, f"speed-{workers}", settings, labels, max_steps=12,
            batch_size=8 // workers, workers=workers, cpus_per_worker=2 // workers))
    lora_rate = (results.get("lora", {}).get(str(n)) or {}).get("steady_rows_per_s")
    base_rate = (results.get("base-choice", {}).get("adapter-prompt") or {}).get("steady_rows_per_s")
    ratio = round(lora_rate / base_rate, 2) if lora_rate and base_rate else None
    print(f"lora-{n} classification rows/s over the base model's: {ratio}")
    results["lora-over-base-rows-per-s"] = {str(n): {"ratio": ratio}}


SINGLE = ("embedding-head", "lora", "knn-examples", "choice")


def verdicts(results: dict[str, dict[str, dict]]) -> list[str]:
    """Per label set and size: auto against the best single method and the reference."""
    lines = []
    for set_name, by_method in results.items():
        for n, got in sorted(by_method.get("auto", {}).items(), key=lambda kv: int(kv[0])):
            singles = {m: by_method[m][n]["accuracy"] for m in SINGLE
                       if "accuracy" in by_method.get(m, {}).get(n, {})}
            ref = by_method.get("sklearn-logreg", {}).get(n, {}).get("accuracy")
            if "accuracy" not in got or not singles or ref is None:
                lines.append(f"{set_name} {n}/label: incomplete ({got.get('error', 'no figures')})")
                continue
            best = max(singles, key=singles.get)
            lines.append(
                f"{set_name} {n}/label: auto {got['accuracy']:.3f} (chose "
                f"{got['train'].get('chosen')}) vs best single {best} {singles[best]:.3f} "
                f"({got['accuracy'] - singles[best]:+.3f}), vs scikit-learn "
                f"{ref:.3f} ({got['accuracy'] - ref:+.3f}); auto took {got['wall_s']:.0f} s")
    return lines


TITLES = {"debian": "Debian sections (6 labels)", "fortunes": "fortune files (6 labels)"}


def chart(results: dict[str, dict[str, dict]], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report import RESULTS

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (set_name, by_method) in zip(axes[0], results.items()):
        for method in ("auto", "lora", "embedding-head", "sklearn-logreg", "knn-examples"):
            points = sorted((int(n), r["accuracy"]) for n, r in by_method.get(method, {}).items())
            if points:
                ax.plot(*zip(*points), marker="o", label=method,
                        linewidth=2.5 if method == "auto" else 1.2)
        fixed = by_method.get("choice", {}).get("fixed")
        if fixed:
            ax.axhline(fixed["accuracy"], color="grey", linestyle="--", label="choice (no rows)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labeled training rows per label")
        ax.set_ylabel("accuracy on held-out rows")
        ax.set_title(f"{TITLES.get(set_name, set_name)}: accuracy by method", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)


if __name__ == "__main__":
    main()

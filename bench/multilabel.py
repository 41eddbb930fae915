"""Multi-label classification: our one-vs-rest embedding head with per-label thresholds
(the fine-tuning job, then the classification job) against scikit-learn's one-vs-rest
logistic regression on the same embeddings with the usual 0.5 bar, on real tags; and
the LLM asked of each label (yes/no): with no labeled rows (`classify --multi-label`,
calibrated, bar 0.5), with its bars chosen on held-out rows (`finetune --method
llm-yes-no`), and `--method auto` choosing between it and the head.

Rows: Debian programs with their debtags (scripts/debian_packages.py --tags: 10 tags
from three facets, 1.5 a row on average). Every 5th row is the test split, never
trained on; training sets of N rows come from the rest (our job holds out a fifth of
them to choose each label's threshold on). One process run, every path on the same
rows; micro/macro F1 and exact-set match on the test rows.

    python bench/multilabel.py [--train-rows 250,1000,2400] [--llm-rows 250]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench.report import save  # noqa: E402
from labeled_csv import write as write_rows  # noqa: E402

SEPARATOR = ";"


def ours(train_csv: Path | None, test_csv: Path, name: str, settings,
         method: str = "embedding-head") -> dict:
    """Our jobs: finetune --multi-label --method ``method`` then classify with it; with no
    ``train_csv``, classify --multi-label alone (the LLM, no labeled rows)."""
    from pipelines.classify import ClassifyArgs, run as classify
    from pipelines.finetune import run as finetune
    from pipelines.finetune_args import FinetuneArgs
    from debian_packages import TAGS

    started = time.perf_counter()
    trained = None
    if train_csv is not None:
        trained = finetune(FinetuneArgs(
            input=[str(train_csv)], name=name, text_column="text", label_column="tags",
            labels=",".join(TAGS), multi_label=True, method=method, eval_fraction=0.2),
            settings, echo=lambda m: None)
    out = Path(tempfile.mkdtemp(prefix="bench-ml-")) / "out"
    how = {"adapter": name} if trained else {"labels": ",".join(TAGS), "multi_label": True}
    summary = classify(ClassifyArgs(input=str(test_csv), text_column="text", id_column="id",
                                    gold_column="tags", output=out, **how), settings,
                       echo=lambda m: None)
    m = summary.multi_label_metrics
    return {"micro_f1": m.micro_f1, "macro_f1": m.macro_f1, "exact_match": m.exact_match,
            "per_label_f1": {k: v["f1"] for k, v in m.per_label.items()},
            "train_seconds": trained.seconds if trained else 0.0,
            **({"chosen": trained.chosen, "chosen_because": trained.chosen_because}
               if trained and trained.chosen else {}),
            "rows_per_s": summary.rows_per_s, "steady_rows_per_s": summary.steady_rows_per_s,
            "wall_s": round(time.perf_counter() - started, 1)}


def reference(train: list[dict], test: list[dict], settings) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from debian_packages import TAGS
    from indexing.embedder import job_embedder, resolve_embedder
    from pipelines.classify_metrics import multilabel_metrics
    from pipelines.multilabel import indicator

    embedder = job_embedder(resolve_embedder(settings), settings)
    x, x_test = (embedder.encode([r["text"] for r in rows]) for rows in (train, test))
    y = indicator([r["tags"] for r in train], TAGS, SEPARATOR)
    model = OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
    predicted = [SEPARATOR.join(t for t, on in zip(TAGS, row) if on)
                 for row in model.predict(x_test)]
    m = multilabel_metrics(predicted, [r["tags"] for r in test], SEPARATOR)
    return {"micro_f1": m.micro_f1, "macro_f1": m.macro_f1, "exact_match": m.exact_match}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", default="250,1000,2400")
    parser.add_argument("--llm-rows", default="250", help="sizes the LLM paths run at "
                        "(each labels every test row once per tag)")
    args = parser.parse_args()

    from debian_packages import TAGS, tagged_rows
    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    work = Path(tempfile.mkdtemp(prefix="bench-multilabel-"))
    os.environ["LLAMA_RAG_ADAPTERS__DIR"] = str(work / "adapters")
    settings = load_settings()
    apply_offline_policy(settings.models)
    rows = tagged_rows(3000, TAGS)
    test = rows[::5]
    pool = [r for i, r in enumerate(rows) if i % 5]
    test_csv = work / "test.csv"
    write_rows(str(test_csv), test)
    results: dict[str, dict] = {"ours": {}, "sklearn-ovr-0.5": {}, "llm-zero-shot": {},
                                "llm-yes-no": {}, "auto": {}}
    llm_sizes = {int(v) for v in args.llm_rows.split(",") if v}
    if llm_sizes:
        results["llm-zero-shot"]["0"] = ours(None, test_csv, "", settings)
        print(f"llm-zero-shot {results['llm-zero-shot']['0']}", flush=True)
    for n in [int(v) for v in args.train_rows.split(",")]:
        train = pool[::max(1, len(pool) // n)][:n]
        train_csv = work / f"train-{n}.csv"
        write_rows(str(train_csv), train)
        results["sklearn-ovr-0.5"][str(n)] = reference(train, test, settings)
        results["ours"][str(n)] = ours(train_csv, test_csv, f"tags-{n}", settings)
        if n in llm_sizes:
            for method in ("llm-yes-no", "auto"):
                results[method][str(n)] = ours(train_csv, test_csv, f"{method}-{n}", settings,
                                               method)
        for method in results:
            if str(n) in results[method]:
                print(f"{method:16s} {n:5d} {results[method][str(n)]}", flush=True)
        a, b = results["ours"][str(n)], results["sklearn-ovr-0.5"][str(n)]
        print(f"{n} rows: macro-F1 ours/reference {a['macro_f1'] / b['macro_f1']:.2f}x, "
              f"micro-F1 {a['micro_f1'] / b['micro_f1']:.2f}x")
    save("multilabel", {"data": f"Debian programs by debtags ({len(TAGS)} tags), "
                        f"{len(test)} test rows", "tags": TAGS, "results": results})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

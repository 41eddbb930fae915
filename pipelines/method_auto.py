"""`finetune --method auto`: train the classifiers that fit the data and the time budget,
and keep the one that labels the held-out rows best.

Which method wins depends on the labels and the data: a five-second embedding head
beat a ten-minute LoRA adapter on one set of Debian sections and lost to it on
another (docs/finetune.md). So the job measures instead of guessing:

- the embedding head, its L2 strength chosen by stratified k-fold cross-validation on
  the training rows and its probabilities calibrated (one temperature fitted on the
  out-of-fold logits);
- a LoRA adapter (Ray Train), when its estimated training time fits ``--budget-minutes``;
- their ensemble (the mean of the head's calibrated probabilities and the adapter's),
  when both were trained.

Each is scored on the same held-out split, and the best is published; a tie goes to
the cheaper one to run (the head labels rows at embedding speed, with no LLM). A
published head is then refit on the held-out rows too (its C and temperature kept):
the figures are those of the fit that did not see them. Every
candidate's figures, and why the winner won, go into the manifest and the summary.
Pure numpy and torch here; the training itself is pipelines.embedding_head's and
pipelines.finetune's.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel

from pipelines.classify_metrics import metrics
from pipelines.embedding_head import HEAD_FILE, fit, predict, save_head
from pipelines.finetune_args import EPOCHS_UNJUDGED, FinetuneArgs
from pipelines.finetune_data import TrainingData

C_GRID = (0.25, 1.0, 4.0, 16.0)  # inverse L2 strengths cross-validated for the head
FOLDS = 5
HEAD_WEIGHT = 0.5  # the head's share of an ensemble's probabilities
# LoRA training rows per second for one CPU worker of 2 threads (float32, SmolLM2-135M);
# docs/benchmarks.md has the measurement. Used only to decide whether LoRA fits.
LORA_CPU_ROWS_PER_S = 2.0
# the LLM's multi-label yes/no prompts per second, one CPU engine of 2 threads
# (docs/finetune.md has the measurement); used only to decide whether it fits the budget
YES_NO_CPU_PROMPTS_PER_S = 15.0
COST = {"embedding-head": 0, "lora": 1, "llm-yes-no": 1, "ensemble": 2}  # ties: cheaper first

CandidateMethod = Literal["embedding-head", "lora", "ensemble", "llm-yes-no"]


class Candidate(BaseModel):
    """One method's result on the held-out split (``skipped``: why it was not trained)."""

    method: CandidateMethod
    eval_accuracy: float | None = None
    eval_micro_f1: float | None = None  # multi-label: what the choice is made on
    eval_macro_f1: float | None = None  # single label: the choice's measure under --class-weight balanced
    eval_loss: float | None = None
    seconds: float = 0.0
    params: dict[str, Any] = {}
    skipped: str | None = None


class Outcome(BaseModel):
    """What auto publishes: the winner, its metrics and files, and every candidate."""

    model_config = {"arbitrary_types_allowed": True}

    chosen: CandidateMethod
    why: str
    candidates: list[Candidate]
    metrics: dict[str, Any]
    files: Path
    head_weight: float | None = None  # ensemble: the head's share
    lora_run: str | None = None


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each row's fold (0..k-1): every label spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rng.shuffle(rows)
        fold[rows] = np.arange(len(rows)) % k
    return fold


def cross_validate(x: np.ndarray, y: np.ndarray, classes: int, seed: int,
                   grid: tuple[float, ...] = C_GRID, folds: int = FOLDS, balanced: bool = False
                   ) -> tuple[float, dict[float, float], np.ndarray | None]:
    """(best C, cross-validated accuracy per C, the best C's out-of-fold logits). With
    fewer than 2 rows of some label there is nothing to validate on: C=1, no logits.
    ``balanced``: class-weighted fits, judged by macro-F1 (what that weighting is for)."""
    k = min(folds, int(np.bincount(y, minlength=classes).min()))
    if k < 2:
        return 1.0, {}, None
    fold = stratified_folds(y, k, seed)
    scores: dict[float, float] = {}
    logits: dict[float, np.ndarray] = {}
    for c in grid:
        out = np.zeros((len(y), classes), dtype=np.float64)
        for f in range(k):
            train, test = fold != f, fold == f
            weight, bias, _ = fit(x[train], y[train], classes, seed, c, balanced)
            out[test] = x[test] @ weight.T + bias
        logits[c] = out
        predicted = out.argmax(axis=1)
        scores[c] = metrics(predicted.astype(str).tolist(), y.astype(str).tolist()).macro_f1 \
            if balanced else float((predicted == y).mean())
    best = max(grid, key=lambda c: (round(scores[c], 6), -abs(math.log(c))))  # ties: nearest C=1
    return best, scores, logits[best]


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y`` (a grid
    search: one parameter, and robust where L-BFGS on few rows is not)."""
    best, best_nll = 1.0, math.inf
    for t in np.geomspace(0.05, 20.0, 121):
        value = nll(_softmax(logits / t), y)
        if value < best_nll:
            best, best_nll = float(t), value
    return round(best, 4)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())


def lora_estimate_minutes(args: FinetuneArgs, train_rows: int) -> float | None:
    """Estimated time of the shortest LoRA training worth trying (``EPOCHS_UNJUDGED``
    where held-out rows may stop it later: the trainer itself stops at an epoch's end
    once the budget would not hold another); None on GPUs (no CPU figure applies)."""
    if args.gpus_per_worker > 0:
        return None
    epochs = min(args.lora_epochs(), EPOCHS_UNJUDGED) if args.judged_by_epoch() \
        else args.lora_epochs()
    steps_rows = args.max_steps * args.batch_size * args.workers if args.max_steps \
        else train_rows * epochs
    rate = LORA_CPU_ROWS_PER_S * args.workers * min(args.cpus_per_worker, 2) / 2
    return steps_rows / rate / 60


def scored(method: CandidateMethod, probs: np.ndarray, gold: np.ndarray, labels: list[str],
           seconds: float, params: dict[str, Any]) -> Candidate:
    m = metrics([labels[i] for i in probs.argmax(axis=1)], [labels[i] for i in gold])
    return Candidate(method=method, eval_accuracy=m.accuracy if m else None,
                     eval_macro_f1=round(m.macro_f1, 4) if m else None,
                     eval_loss=round(nll(probs, gold), 4), seconds=round(seconds, 2),
                     params=params)


def choose(candidates: list[Candidate], measure: str = "eval_accuracy"
           ) -> tuple[Candidate, str]:
    """The best held-out ``measure`` (accuracy; micro-F1 for multi-label); on a tie the
    cheaper to run; and why, in words."""
    def value(c: Candidate) -> float | None:
        return getattr(c, measure)

    ran = [c for c in candidates if value(c) is not None]
    best = max(ran, key=lambda c: (value(c), -COST[c.method]))
    others = ", ".join(f"{c.method} {value(c):.3f}" for c in ran if c is not best)
    tied = [c.method for c in ran if c is not best and value(c) == value(best)]
    said = {"eval_accuracy": "accuracy", "eval_micro_f1": "micro-F1"}.get(measure, "macro-F1")
    why = f"{best.method} has the best held-out {said}, {value(best):.3f}"
    why += f" (against {others})" if others else " (the only candidate trained)"
    if tied:
        why += f"; it ties {', '.join(tied)} and is cheaper to run"
    skipped = [f"{c.method}: {c.skipped}" for c in candidates if c.skipped]
    if skipped:
        why += "; not trained: " + "; ".join(skipped)
    return best, why


def run_auto(args: FinetuneArgs, data: TrainingData, encode: Callable[[list[str]], np.ndarray],
             train_lora: Callable[[], tuple[dict[str, Any], Path, str]],
             echo: Callable[[str], None]) -> Outcome:
    """Train the candidates, score them on ``data.eval``, pick one. ``encode`` embeds
    texts (the job's embedder); ``train_lora`` runs the Ray Train job and returns
    (metrics with ``eval_probs``, the adapter folder, the run's name)."""
    import tempfile

    labels = data.labels.labels
    started = time.perf_counter()
    x = encode([r.text for r in data.train])
    y = np.array([labels.index(r.target) for r in data.train])
    gold = np.array([labels.index(r.target) for r in data.eval])
    x_eval = encode([r.text for r in data.eval])
    balanced = args.class_weight == "balanced"
    c, cv, oof = cross_validate(x, y, len(labels), args.seed, balanced=balanced)
    temperature = fit_temperature(oof, y) if oof is not None else 1.0
    weight, bias, losses = fit(x, y, len(labels), args.seed, c, balanced)
    head_probs = predict(x_eval, weight, bias, temperature)
    judged = "macro_f1" if balanced else "accuracy"
    head = scored("embedding-head", head_probs, gold, labels, time.perf_counter() - started,
                  {"C": c, "temperature": temperature, "class_weight": args.class_weight,
                   f"cross_validated_{judged}": {str(k): round(v, 4) for k, v in cv.items()}})
    echo(f"embedding head: C={c} (cross-validated), temperature {temperature}, held-out "
         f"accuracy {head.eval_accuracy}, macro-F1 {head.eval_macro_f1}")
    candidates = [head]
    probs = {"embedding-head": head_probs}
    estimate = lora_estimate_minutes(args, len(data.train))
    lora_metrics: dict[str, Any] = {}
    lora_dir = lora_run = None
    if estimate is not None and estimate > args.budget_minutes:
        skip = (f"about {estimate:.0f} min of training on this CPU, over --budget-minutes "
                f"{args.budget_minutes:g}")
        candidates += [Candidate(method="lora", skipped=skip),
                       Candidate(method="ensemble", skipped="needs the LoRA adapter")]
    else:
        echo("training the LoRA candidate" + (f" (about {estimate:.0f} min)" if estimate else ""))
        lora_started = time.perf_counter()
        lora_metrics, lora_dir, lora_run = train_lora()
        lora_probs = np.asarray(lora_metrics.pop("eval_probs"), dtype=np.float64)
        lora_s = time.perf_counter() - lora_started
        candidates.append(scored("lora", lora_probs, gold, labels, lora_s,
                                 {"epochs": args.lora_epochs(), "lora_rank": args.lora_rank,
                                  "class_weight": args.class_weight,
                                  "learning_rate": args.learning_rate,
                                  "published_epoch": lora_metrics.get("published_epoch"),
                                  "epochs_eval": lora_metrics.get("epochs_eval")}))
        probs["lora"] = lora_probs
        probs["ensemble"] = HEAD_WEIGHT * head_probs + (1 - HEAD_WEIGHT) * lora_probs
        candidates.append(scored("ensemble", probs["ensemble"], gold, labels, lora_s + head.seconds,
                                 {"head_weight": HEAD_WEIGHT}))
    best, why = choose(candidates, "eval_macro_f1" if balanced else "eval_accuracy")
    echo(f"chose {why}")
    head_dir = Path(tempfile.mkdtemp(prefix="llama-rag-head-"))
    if best.method != "lora":  # the method is chosen: the head it publishes learns every row
        weight, bias, losses = fit(np.vstack([x, x_eval]), np.concatenate([y, gold]),
                                   len(labels), args.seed, c, balanced)
        save_head(head_dir, weight, bias, temperature)
    figures = [c.model_dump(exclude_none=True) for c in candidates]
    m = metrics([labels[i] for i in probs[best.method].argmax(axis=1)],
                [r.target for r in data.eval])
    common = {"candidates": figures, "chosen": best.method, "chosen_because": why,
              "eval_rows": len(data.eval), "eval_accuracy": best.eval_accuracy,
              "eval_loss": best.eval_loss, "eval_macro_f1": best.eval_macro_f1,
              "per_label": m.per_label if m else {}}
    if best.method == "embedding-head":
        if lora_dir is not None:
            _remove(lora_dir)
        return Outcome(chosen=best.method, why=why, candidates=candidates, files=head_dir,
                       lora_run=lora_run, metrics={
                           **common, "step": len(losses), "losses": losses,
                           "train_loss": losses[-1][1] if losses else None,
                           "train_seconds": head.seconds,
                           "train_rows_seen": len(x) + len(x_eval)})
    lora_metrics.update(common)
    if best.method == "ensemble":
        (head_dir / HEAD_FILE).replace(lora_dir / HEAD_FILE)
    _remove(head_dir)
    return Outcome(chosen=best.method, why=why, candidates=candidates, files=lora_dir,
                   lora_run=lora_run, metrics=lora_metrics,
                   head_weight=HEAD_WEIGHT if best.method == "ensemble" else None)


def yes_no_estimate_minutes(args: FinetuneArgs, eval_rows: int, labels: int) -> float | None:
    """Estimated time of the LLM scoring the held-out rows' labels; None on GPUs (tried)."""
    if args.gpus_per_worker > 0:
        return None
    return eval_rows * labels / YES_NO_CPU_PROMPTS_PER_S / 60


def run_multi_auto(args: FinetuneArgs, data: TrainingData,
                   train_head: Callable[[], tuple[dict[str, Any], Path]],
                   train_llm: Callable[[], tuple[dict[str, Any], Path]],
                   echo: Callable[[str], None]) -> Outcome:
    """Multi-label auto: the one-vs-rest head, and the LLM's per-label yes/no when scoring
    the held-out rows fits ``--budget-minutes``; each with its bars chosen on the
    held-out rows, the better micro-F1 published."""
    trained: dict[str, tuple[dict[str, Any], Path]] = {}
    candidates: list[Candidate] = []
    for method, train in (("embedding-head", train_head), ("llm-yes-no", train_llm)):
        estimate = yes_no_estimate_minutes(args, len(data.eval), len(data.labels.labels)) \
            if method == "llm-yes-no" else None
        if estimate is not None and estimate > args.budget_minutes:
            candidates.append(Candidate(method=method, skipped=(
                f"about {estimate:.0f} min to score the held-out rows on this CPU, over "
                f"--budget-minutes {args.budget_minutes:g}")))
            continue
        started = time.perf_counter()
        metrics, folder = train()
        metrics.pop("eval_probs", None)
        trained[method] = metrics, folder
        candidates.append(Candidate(
            method=method, eval_accuracy=metrics.get("eval_exact_match"),
            eval_micro_f1=metrics.get("eval_micro_f1"),
            seconds=round(time.perf_counter() - started, 2),
            params={"eval_macro_f1": metrics.get("eval_macro_f1"),
                    "thresholds": metrics.get("thresholds")}))
    best, why = choose(candidates, "eval_micro_f1")
    echo(f"chose {why}")
    for method, (_, folder) in trained.items():
        if method != best.method:
            _remove(folder)
    metrics, folder = trained[best.method]
    metrics.update(candidates=[c.model_dump(exclude_none=True) for c in candidates],
                   chosen=best.method, chosen_because=why)
    return Outcome(chosen=best.method, why=why, candidates=candidates, metrics=metrics,
                   files=folder)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)

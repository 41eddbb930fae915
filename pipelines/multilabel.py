"""Multi-label classification with the embedding head: one logistic regression per label
on the embedder's unit vectors (one-vs-rest), and one threshold per label.

A row gets every label whose probability clears that label's threshold. Each threshold
is chosen on the held-out rows to maximise its own label's F1: a rare tag needs a lower
bar than a common one, and one bar of 0.5 for all leaves rare tags out. The head is
published like the single-label one (``head.safetensors``, with ``thresholds``), and
:class:`pipelines.embedding_head.HeadClassifier` applies it in the classification job.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llama_rag.config import Settings
from indexing.embedder import EmbedderRef, job_embedder
from pipelines.classify_metrics import multilabel_metrics
from pipelines.embedding_head import C, HEAD_FILE, picked, probabilities
from pipelines.finetune_data import TrainingData, split_labels


def indicator(targets: list[str], labels: list[str], separator: str) -> np.ndarray:
    """Rows x labels, 1 where the row has the label."""
    index = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(targets), len(labels)), dtype=np.float32)
    for i, target in enumerate(targets):
        for label in split_labels(target, separator):
            out[i, index[label]] = 1.0
    return out


def fit_multi(x: np.ndarray, y: np.ndarray, seed: int = 0, c: float = C
              ) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """(weight [labels, dim], bias [labels], loss per iteration): every label's logistic
    regression at once, binary cross-entropy summed over labels and averaged over rows,
    + ||W||^2 / (2 c n) (each label's objective is scikit-learn's LogisticRegression(C=c)
    divided by n)."""
    import torch

    torch.manual_seed(seed)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ys = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    w = torch.zeros(ys.shape[1], xs.shape[1], requires_grad=True)
    b = torch.zeros(ys.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe")
    losses: list[list[float]] = []

    def closure():
        opt.zero_grad()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            xs @ w.T + b, ys, reduction="sum") / len(ys)
        loss = bce + (w * w).sum() / (2 * c * len(ys))
        loss.backward()
        losses.append([len(losses) + 1, round(loss.item(), 5)])
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy(), losses


def thresholds(probs: np.ndarray, y: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the probability bar that maximises its F1 on these rows, the one
    nearest ``default`` among equals (``default`` for a label with no positive row:
    nothing to choose by)."""
    out = np.full(probs.shape[1], default, dtype=np.float32)
    for j in range(probs.shape[1]):
        positives = y[:, j] > 0
        if not positives.any():
            continue
        best = (-1.0, 0.0)
        for bar in np.unique(np.concatenate([probs[positives, j], [default]])):
            predicted = probs[:, j] >= bar
            f1 = 2 * float((predicted & positives).sum()) / (predicted.sum() + positives.sum())
            best = max(best, (round(f1, 9), -abs(bar - default)))
            if best == (round(f1, 9), -abs(bar - default)):
                out[j] = bar
    return out


def train_multi_head(data: TrainingData, ref: EmbedderRef, settings: Settings, seed: int,
                     separator: str, echo: Callable[[str], None]) -> tuple[dict[str, Any], Path]:
    """Embed, fit, choose the thresholds on the eval rows, evaluate; the metrics and a
    folder holding ``head.safetensors``."""
    from safetensors.numpy import save_file

    labels = data.labels.labels
    embedder = job_embedder(ref, settings)
    started = time.perf_counter()
    x = embedder.encode([r.text for r in data.train])
    weight, bias, losses = fit_multi(x, indicator([r.target for r in data.train], labels,
                                                  separator), seed)
    out: dict[str, Any] = {"step": len(losses), "losses": losses,
                           "train_loss": losses[-1][1] if losses else None,
                           "train_rows_seen": len(x)}
    bars = np.full(len(labels), 0.5, dtype=np.float32)
    if data.eval:
        probs = probabilities(embedder.encode([r.text for r in data.eval]), weight, bias)
        gold = [r.target for r in data.eval]
        bars = thresholds(probs, indicator(gold, labels, separator))
        m = multilabel_metrics(picked(probs, bars, labels, separator)[0], gold, separator)
        out.update(eval_rows=len(gold), eval_micro_f1=m.micro_f1, eval_macro_f1=m.macro_f1,
                   eval_exact_match=m.exact_match, per_label=m.per_label,
                   eval_accuracy=m.exact_match, thresholds=dict(zip(labels, bars.round(4).tolist())))
        echo(f"held-out rows: micro-F1 {m.micro_f1}, macro-F1 {m.macro_f1} (thresholds chosen "
             "on them, one per label)")
    out["train_seconds"] = round(time.perf_counter() - started, 2)
    folder = Path(tempfile.mkdtemp(prefix="llama-rag-head-"))
    save_file({"weight": weight.astype(np.float32), "bias": bias.astype(np.float32),
               "thresholds": bars.astype(np.float32)}, str(folder / HEAD_FILE))
    return out, folder

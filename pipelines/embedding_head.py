"""The cheap strong classifier: a linear softmax head on the embedder's unit vectors.

With a few hundred labeled rows, embeddings + a linear model beat prompting a
135M model by a wide margin and label at embedding speed, with no LLM at all.
Training is multinomial logistic regression with an L2 penalty, full batch with
L-BFGS (the objective scikit-learn's ``LogisticRegression(C=1)`` minimises), so
it needs seconds, not a Ray Train job. The head is published in the adapter
registry like a LoRA adapter (``head.safetensors``), and ``classify --adapter NAME``
runs :class:`HeadClassifier` in the Ray Data job instead of vLLM actors.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llama_rag.config import Settings
from indexing.embedder import EmbedderRef, job_embedder
from pipelines.finetune_data import TrainingData

HEAD_FILE = "head.safetensors"
C = 1.0  # inverse L2 strength, as scikit-learn's default


def balanced_weights(y: np.ndarray, classes: int) -> np.ndarray:
    """scikit-learn's ``class_weight="balanced"``: n / (classes x rows of the label), so
    every label weighs as much in the loss as if the rows were balanced (a label with no
    rows: 1, it never occurs)."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (classes * np.maximum(counts, 1)), 1.0)


def label_weights(data: TrainingData) -> dict[str, float]:
    """:func:`balanced_weights` by label name, for the LoRA loss (pipelines.finetune_train)."""
    labels = data.labels.labels
    y = np.array([labels.index(r.target) for r in data.train], dtype=np.int64)
    return {k: round(float(v), 6) for k, v in zip(labels, balanced_weights(y, len(labels)))}


def fit(x: np.ndarray, y: np.ndarray, classes: int, seed: int = 0, c: float = C,
        balanced: bool = False) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """(weight [classes, dim], bias [classes], loss per iteration): minimises
    mean cross-entropy + ||W||^2 / (2 c n); ``balanced``: each row's cross-entropy
    weighted by :func:`balanced_weights`."""
    import torch

    torch.manual_seed(seed)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    ys = torch.from_numpy(y.astype(np.int64))
    per_class = torch.from_numpy(balanced_weights(y, classes).astype(np.float32)) \
        if balanced else None
    w = torch.zeros(classes, xs.shape[1], requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe")
    losses: list[list[float]] = []

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(xs @ w.T + b, ys, weight=per_class)
                + (w * w).sum() / (2 * c * len(ys)))
        loss.backward()
        losses.append([len(losses) + 1, round(loss.item(), 5)])
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy(), losses


def predict(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
            temperature: float = 1.0) -> np.ndarray:
    """Softmax probabilities, one row per input (logits divided by ``temperature``, the
    calibration `--method auto` fits on held-out rows)."""
    logits = (x @ weight.T + bias) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def probabilities(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A multi-label head's (pipelines.multilabel): each label's own sigmoid."""
    return 1.0 / (1.0 + np.exp(-(x @ weight.T + bias)))


def picked(probs: np.ndarray, bars: np.ndarray, labels: list[str], separator: str
           ) -> tuple[list[str], list[float]]:
    """(each row's labels joined by ``separator``, "" for none; its confidence: the least
    sure chosen label's probability, or for none the chance that the likeliest is absent)."""
    out, confidence = [], []
    for row in probs:
        chosen = [j for j in range(len(labels)) if row[j] >= bars[j]]
        out.append(separator.join(labels[j] for j in chosen))
        confidence.append(round(float(min(row[j] for j in chosen) if chosen else 1 - row.max()), 4))
    return out, confidence


def train_head(data: TrainingData, ref: EmbedderRef, settings: Settings, seed: int,
               echo: Callable[[str], None], balanced: bool = False
               ) -> tuple[dict[str, Any], Path]:
    """Embed, fit, evaluate; returns the metrics and a folder holding ``head.safetensors``."""
    import time

    from pipelines.classify_metrics import metrics

    labels = data.labels.labels
    embedder = job_embedder(ref, settings)
    started = time.perf_counter()
    x = embedder.encode([r.text for r in data.train])
    embed_s = time.perf_counter() - started
    echo(f"embedded {len(x)} training rows in {embed_s:.1f} s ({len(x) / embed_s:.0f} rows/s)")
    y = np.array([labels.index(r.target) for r in data.train])
    fit_started = time.perf_counter()
    weight, bias, losses = fit(x, y, len(labels), seed, balanced=balanced)
    out: dict[str, Any] = {"step": len(losses), "losses": losses,
                           "train_loss": losses[-1][1] if losses else None,
                           "train_seconds": round(time.perf_counter() - started, 2),
                           "train_rows_seen": len(x), "fit_seconds":
                           round(time.perf_counter() - fit_started, 2)}
    if data.eval:
        probs = predict(embedder.encode([r.text for r in data.eval]), weight, bias)
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        m = metrics(predicted, [r.target for r in data.eval])
        gold = np.array([labels.index(r.target) for r in data.eval])
        out.update(eval_loss=round(float(-np.log(probs[np.arange(len(gold)), gold] + 1e-12).mean()), 4),
                   eval_accuracy=m.accuracy, per_label=m.per_label, eval_rows=len(data.eval))
    folder = Path(tempfile.mkdtemp(prefix="llama-rag-head-"))
    save_head(folder, weight, bias)
    return out, folder


def save_head(folder: Path, weight: np.ndarray, bias: np.ndarray, temperature: float = 1.0) -> None:
    """``head.safetensors`` in ``folder``: what :class:`HeadClassifier` loads."""
    from safetensors.numpy import save_file

    save_file({"weight": weight.astype(np.float32), "bias": bias.astype(np.float32),
               "temperature": np.array([temperature], dtype=np.float32)}, str(folder / HEAD_FILE))


class HeadClassifier:
    """Ray Data actor: embed a batch, apply the head; the job's result columns."""

    def __init__(self, ref: EmbedderRef, settings: Settings, head_path: str, labels: list[str],
                 separator: str | None = None) -> None:
        from safetensors.numpy import load_file

        tensors = load_file(head_path)
        self.weight, self.bias, self.labels = tensors["weight"], tensors["bias"], labels
        self.bars = tensors.get("thresholds")  # a multi-label head (pipelines.multilabel)
        self.separator = separator or ";"
        self.temperature = float(tensors["temperature"][0]) if "temperature" in tensors else 1.0
        self.embedder = job_embedder(ref, settings)

    def probs(self, texts: list[str]) -> np.ndarray:
        return predict(self.embedder.encode(texts), self.weight, self.bias, self.temperature)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        texts = [str(t) for t in batch["text"]]
        if self.bars is not None:
            labels, confidence = picked(probabilities(self.embedder.encode(texts), self.weight,
                                                      self.bias), self.bars, self.labels,
                                        self.separator)
        else:
            probs = self.probs(texts)
            best = probs.argmax(axis=1)
            labels = [self.labels[i] for i in best]
            confidence = [round(float(probs[n, i]), 4) for n, i in enumerate(best)]
        return {"id": list(batch["id"]), "label": labels, "confidence": confidence,
                "truncated": [False] * len(texts), "raw": [""] * len(texts),
                "gold": list(batch["gold"])}


class HeadScores(HeadClassifier):
    """Ray Data actor: the row with the head's probabilities added as ``head_probs``, the
    first stage of an ensemble adapter (the LLM stage blends them with its own)."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        probs = self.probs([str(t) for t in batch["text"]])
        return {**batch, "head_probs": [row.tolist() for row in probs.astype(np.float32)]}

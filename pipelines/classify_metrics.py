"""Accuracy, per-label precision/recall/F1 and the confusion matrix against a gold column."""

from __future__ import annotations

from pydantic import BaseModel


class Metrics(BaseModel):
    evaluated: int
    accuracy: float
    per_label: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]



def metrics(predicted: list[str], gold: list[str | None]) -> Metrics | None:
    """Accuracy, per-label precision/recall/F1 and the confusion matrix (gold -> predicted)."""
    pairs = [(g, p) for g, p in zip(gold, predicted) if g not in (None, "")]
    if not pairs:
        return None
    names = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    confusion = {g: {p: 0 for p in names} for g in names}
    for g, p in pairs:
        confusion[g][p] += 1
    per_label = {}
    for name in names:
        tp = confusion[name][name]
        predicted_n = sum(confusion[g][name] for g in names)
        gold_n = sum(confusion[name].values())
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / gold_n if gold_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {"precision": round(precision, 4), "recall": round(recall, 4),
                           "f1": round(f1, 4), "support": gold_n}
    return Metrics(evaluated=len(pairs), accuracy=round(sum(g == p for g, p in pairs) / len(pairs), 4),
                   per_label=per_label, confusion=confusion)

"""Accuracy, per-label precision/recall/F1 and the confusion matrix against a gold column."""

from __future__ import annotations

from pydantic import BaseModel


class Metrics(BaseModel):
    evaluated: int
    accuracy: float
    per_label: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]

    @property
    def macro_f1(self) -> float:
        """The mean F1 over the labels the gold column holds."""
        f1 = [v["f1"] for v in self.per_label.values() if v["support"]]
        return sum(f1) / len(f1) if f1 else 0.0


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


class MultiLabelMetrics(BaseModel):
    evaluated: int
    micro_f1: float
    macro_f1: float
    exact_match: float  # rows whose whole label set is right
    per_label: dict[str, dict[str, float]]


def multilabel_metrics(predicted: list[str], gold: list[str | None], separator: str
                       ) -> MultiLabelMetrics | None:
    """Micro/macro F1, exact-set match and per-label precision/recall/F1 of label sets
    written as ``separator``-joined strings."""
    from pipelines.finetune_data import split_labels

    pairs = [(set(split_labels(g, separator)), set(split_labels(p or "", separator)))
             for g, p in zip(gold, predicted) if g not in (None, "")]
    if not pairs:
        return None
    names = sorted(set().union(*(g | p for g, p in pairs)))
    per_label, tp_all, fp_all, fn_all = {}, 0, 0, 0
    for name in names:
        tp = sum(name in g and name in p for g, p in pairs)
        fp = sum(name not in g and name in p for g, p in pairs)
        fn = sum(name in g and name not in p for g, p in pairs)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        per_label[name] = {"precision": round(precision, 4), "recall": round(recall, 4),
                           "f1": round(f1, 4), "support": tp + fn}
    supported = [v["f1"] for v in per_label.values() if v["support"]]
    micro = 2 * tp_all / (2 * tp_all + fp_all + fn_all) if tp_all + fp_all + fn_all else 0.0
    return MultiLabelMetrics(
        evaluated=len(pairs), micro_f1=round(micro, 4),
        macro_f1=round(sum(supported) / len(supported), 4) if supported else 0.0,
        exact_match=round(sum(g == p for g, p in pairs) / len(pairs), 4), per_label=per_label)

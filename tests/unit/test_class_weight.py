"""`--class-weight balanced`: each label weighs as much in the loss as if the labeled rows
were balanced (the head's L-BFGS fit, the LoRA answer loss, auto's choice)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llama_rag.config import load_settings
from llama_rag.errors import InvalidInputError
from pipelines.embedding_head import balanced_weights, fit, label_weights, predict
from pipelines.finetune import check_args
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune_data import IGNORE, Batch, LabelSet, Row, TrainingData
from pipelines.finetune_train import answer_loss
from pipelines.classify_metrics import metrics
from pipelines.method_auto import run_auto


def test_weights_are_rows_over_labels_times_label_rows():
    y = np.array([0, 0, 0, 1])
    assert balanced_weights(y, 3) == pytest.approx([4 / 9, 4 / 3, 1.0])  # label 2 never occurs
    assert balanced_weights(y, 2)[y].mean() == pytest.approx(1.0)  # every label has rows: mean 1
    data = TrainingData(train=[Row(id=str(i), text="t", target=t) for i, t in
                               enumerate(["a", "a", "a", "b"])], eval=[], errors=[],
                        labels=LabelSet(labels=["a", "b"]), spec=None, fingerprint={})
    assert label_weights(data) == {"a": pytest.approx(2 / 3), "b": pytest.approx(2.0)}


def skewed(n_major: int, n_minor: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping clusters, the second label rare."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * n_major + [1] * n_minor)
    x = np.eye(2, 8)[y] + rng.normal(0, 0.7, (len(y), 8))
    return x, y


def test_a_balanced_head_finds_more_of_the_rare_label():
    x, y = skewed(300, 15, 0)
    test_x, test_y = skewed(200, 200, 1)
    plain = predict(test_x, *fit(x, y, 2)[:2]).argmax(axis=1)
    balanced = predict(test_x, *fit(x, y, 2, balanced=True)[:2]).argmax(axis=1)
    recall = lambda p: ((p == 1) & (test_y == 1)).sum() / 200  # noqa: E731
    assert recall(balanced) > recall(plain) + 0.1
    macro_f1 = lambda p: metrics(p.astype(str).tolist(), test_y.astype(str).tolist()).macro_f1  # noqa: E731
    assert macro_f1(balanced) > macro_f1(plain)


class FixedLogits(torch.nn.Module):
    """A model whose answer logits are given: what answer_loss reads."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, **_):
        return SimpleNamespace(logits=self.logits)


def test_the_lora_loss_weighs_each_row_by_its_label():
    logits = torch.randn(2, 3, 5)
    labels = [[1, 2, IGNORE], [4, IGNORE, IGNORE]]  # a two-token answer and a one-token one
    batch = Batch(input_ids=[[0, 0, 0]] * 2, attention_mask=[[1, 1, 1]] * 2,
                  position_ids=[[0, 1, 2]] * 2, labels=labels, keep=3)
    model = FixedLogits(logits)
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), torch.tensor(labels).reshape(-1),
                                                  ignore_index=IGNORE, reduction="none").view(2, 3)
    rows = torch.stack([per_token[0, :2].mean(), per_token[1, 0]])
    plain = answer_loss(model, batch, "cpu")
    assert plain.item() == pytest.approx(per_token.sum().item() / 3)  # unchanged: over the tokens
    assert answer_loss(model, batch, "cpu", [1.0, 1.0]).item() == pytest.approx(rows.mean().item())
    assert answer_loss(model, batch, "cpu", [0.5, 1.5]).item() == pytest.approx(
        (0.5 * rows[0] + 1.5 * rows[1]).item() / 2)


def test_class_weight_is_for_single_label_classifiers():
    settings = load_settings()
    for bad in ({"multi_label": True, "method": "embedding-head"}, {"task": "instruct"}):
        with pytest.raises(InvalidInputError, match="--class-weight"):
            check_args(FinetuneArgs(input=["x"], name="a", class_weight="balanced", **bad), settings)
    check_args(FinetuneArgs(input=["x"], name="a", class_weight="balanced"), settings)


def test_balanced_auto_judges_by_macro_f1(tmp_path):
    x, y = skewed(150, 12, 2)
    ex, ey = skewed(40, 10, 3)
    labels = ["common", "rare"]
    rows = [Row(id=str(i), text=f"r{i}", target=labels[t]) for i, t in enumerate(y)]
    held = [Row(id=f"e{i}", text=f"e{i}", target=labels[t]) for i, t in enumerate(ey)]
    table = {r.text: v for r, v in zip(rows + held, np.vstack([x, ex]))}
    data = TrainingData(train=rows, eval=held, errors=[], labels=LabelSet(labels=labels),
                        spec=None, fingerprint={})
    args = FinetuneArgs(input=["x"], name="a", method="auto", budget_minutes=0,
                        class_weight="balanced")
    out = run_auto(args, data, lambda texts: np.stack([table[t] for t in texts]),
                   lambda: pytest.fail("LoRA is over the budget"), lambda m: None)
    head = out.candidates[0]
    assert "macro-F1" in out.why and head.eval_macro_f1 is not None
    assert head.params["class_weight"] == "balanced" and "cross_validated_macro_f1" in head.params
    assert out.metrics["eval_macro_f1"] == head.eval_macro_f1


def test_skewed_rows_get_a_note_naming_the_flag():
    from pipelines.finetune import skewed_labels

    def data(counts: dict[str, int]) -> TrainingData:
        rows = [Row(id=f"{k}{i}", text="t", target=k) for k, n in counts.items() for i in range(n)]
        return TrainingData(train=rows, eval=[], errors=[], labels=LabelSet(labels=list(counts)),
                            spec=None, fingerprint={})

    args = FinetuneArgs(input=["x"], name="a")
    note = skewed_labels(args, data({"a": 40, "b": 10, "c": 9}))
    assert note and "a: 40 rows, c: 9" in note and "--class-weight balanced" in note
    assert skewed_labels(args, data({"a": 30, "b": 10})) is None  # 3x: not skewed enough
    assert skewed_labels(args.model_copy(update={"class_weight": "balanced"}),
                         data({"a": 40, "b": 1})) is None

"""`finetune --method auto`: cross-validated head, calibration, the LoRA budget, and the
choice between candidates (a LoRA trainer stands in for Ray Train here; the real one
runs in tests/integration/test_finetune.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from llama_rag.errors import InvalidInputError
from llama_rag.config import load_settings
from pipelines.classify_llm import blended
from pipelines.embedding_head import HEAD_FILE, predict
from pipelines.finetune import check_args
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune_data import LabelSet, Row, TrainingData
from pipelines.method_auto import (Candidate, choose, cross_validate, fit_temperature,
                                   lora_estimate_minutes, run_auto, stratified_folds)

LABELS = ["games", "science", "net"]


def vectors(n: int, seed: int, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one centre per label (noisy enough that not all are right)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16) * 2
    y = np.arange(n) % 3
    x = centres[y] + rng.normal(0, noise, (n, 16))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_folds_spread_every_label_evenly():
    y = np.array([0] * 10 + [1] * 5 + [2] * 7)
    fold = stratified_folds(y, 5, seed=0)
    for label in range(3):
        counts = np.bincount(fold[y == label], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_cross_validation_picks_a_c_from_the_grid_and_gives_out_of_fold_logits():
    x, y = vectors(90, 0)
    c, scores, logits = cross_validate(x, y, 3, seed=0)
    assert c in scores and scores[c] == max(scores.values()) and logits.shape == (90, 3)
    assert (logits.argmax(axis=1) == y).mean() == pytest.approx(scores[c])
    one_of_a_kind = np.array([0, 0, 1, 1, 2])
    assert cross_validate(x[:5], one_of_a_kind, 3, seed=0) == (1.0, {}, None)


def test_temperature_cools_overconfident_logits():
    x, y = vectors(300, 1, noise=0.9)
    logits = np.eye(3, 16)[:, :16] @ x.T
    sharp = logits.T * 50  # the same ranking, far too sure
    t = fit_temperature(sharp, y)
    assert t > 5
    assert predict(np.eye(3), np.eye(3) * 50, np.zeros(3), t).max() < predict(
        np.eye(3), np.eye(3) * 50, np.zeros(3)).max()


def test_lora_is_estimated_from_rows_epochs_and_workers():
    args = FinetuneArgs(input=["x"], name="a", epochs=2)
    assert lora_estimate_minutes(args, 768) == pytest.approx(768 * 2 / 2.0 / 60)
    assert lora_estimate_minutes(args.model_copy(update={"workers": 2}), 768) == pytest.approx(
        768 * 2 / 4.0 / 60)
    assert lora_estimate_minutes(args.model_copy(update={"gpus_per_worker": 1}), 768) is None
    # the default ceiling of 4 epochs is stopped by the held-out rows or the budget: the
    # estimate that decides whether LoRA is tried at all is the first 2 epochs'
    assert lora_estimate_minutes(FinetuneArgs(input=["x"], name="a", eval_fraction=0.2), 768) \
        == pytest.approx(768 * 2 / 2.0 / 60)


def test_the_best_wins_and_a_tie_goes_to_the_cheaper():
    head = Candidate(method="embedding-head", eval_accuracy=0.9)
    lora = Candidate(method="lora", eval_accuracy=0.9)
    both = Candidate(method="ensemble", eval_accuracy=0.93)
    assert choose([head, lora, both])[0] is both
    best, why = choose([head, lora])
    assert best is head and "ties lora and is cheaper to run" in why
    best, why = choose([head, Candidate(method="lora", skipped="over budget")])
    assert best is head and "the only candidate trained" in why and "lora: over budget" in why


def test_blend_is_the_weighted_mean_of_two_distributions():
    assert blended([0.2, 0.8], [1.0, 0.0], 0.5) == pytest.approx([0.6, 0.4])


def data_of(n_train: int, n_eval: int, noise: float = 0.6
            ) -> tuple[TrainingData, dict[str, np.ndarray]]:
    x, y = vectors(n_train + n_eval, 2, noise)
    rows = [Row(id=str(i), text=f"row {i}", target=LABELS[y[i]]) for i in range(len(y))]
    table = {r.text: x[i] for i, r in enumerate(rows)}
    return TrainingData(train=rows[:n_train], eval=rows[n_train:], errors=[],
                        labels=LabelSet(labels=LABELS), spec=None, fingerprint={}), table


def lora_trainer(tmp_path: Path, probs: np.ndarray):
    def train():
        folder = tmp_path / "lora"
        folder.mkdir(exist_ok=True)
        (folder / "adapter_model.safetensors").write_bytes(b"w")
        return {"eval_probs": probs.tolist(), "losses": [[1, 0.5]], "step": 1}, folder, "run-1"
    return train


def test_over_budget_lora_is_skipped_and_the_head_published(tmp_path):
    data, table = data_of(120, 30)
    args = FinetuneArgs(input=["x"], name="a", method="auto", budget_minutes=0)
    out = run_auto(args, data, lambda texts: np.stack([table[t] for t in texts]),
                   lora_trainer(tmp_path, np.zeros((30, 3))), lambda m: None)
    assert out.chosen == "embedding-head" and out.lora_run is None and out.head_weight is None
    assert [c.method for c in out.candidates if c.skipped] == ["lora", "ensemble"]
    head = load_file(str(out.files / HEAD_FILE))
    assert head["weight"].shape == (3, 16) and head["temperature"][0] > 0
    assert out.metrics["eval_accuracy"] == out.candidates[0].eval_accuracy > 0.6
    assert out.metrics["candidates"][0]["params"]["C"] in (0.25, 1.0, 4.0, 16.0)


def test_a_better_lora_wins_and_the_ensemble_is_scored_on_the_same_rows(tmp_path):
    data, table = data_of(120, 60, noise=1.2)
    gold = np.array([LABELS.index(r.target) for r in data.eval])
    args = FinetuneArgs(input=["x"], name="a", method="auto", budget_minutes=60)
    encode = lambda texts: np.stack([table[t] for t in texts])  # noqa: E731
    out = run_auto(args, data, encode, lora_trainer(tmp_path, np.eye(3)[gold]), lambda m: None)
    by = {c.method: c.eval_accuracy for c in out.candidates}
    assert by["embedding-head"] < 1.0 and by["lora"] == 1.0
    assert out.chosen == "lora" and out.lora_run == "run-1" and out.metrics["eval_accuracy"] == 1.0
    assert not (out.files / HEAD_FILE).exists() and "eval_probs" not in out.metrics
    # a LoRA that is right on every other row and unsure on the rest: the blend's figure is
    # the accuracy of the mean of the two distributions, and the best of the three wins
    unsure = np.full((60, 3), 1 / 3)
    unsure[::2] = np.eye(3)[gold[::2]]
    out = run_auto(args, data, encode, lora_trainer(tmp_path, unsure), lambda m: None)
    by = {c.method: c for c in out.candidates}
    assert by["ensemble"].params == {"head_weight": 0.5}
    assert by["ensemble"].eval_accuracy > max(by["lora"].eval_accuracy,
                                              by["embedding-head"].eval_accuracy)
    assert out.chosen == "ensemble" and out.head_weight == 0.5
    assert (out.files / HEAD_FILE).exists() and (out.files / "adapter_model.safetensors").exists()


def test_auto_needs_held_out_rows(tmp_path):
    with pytest.raises(InvalidInputError, match="picks the method on held-out rows"):
        check_args(FinetuneArgs(input=["x"], name="a", method="auto", eval_fraction=0),
                   load_settings())

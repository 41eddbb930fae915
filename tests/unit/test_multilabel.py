"""Multi-label classification: the label sets in the data, the one-vs-rest head, its
per-label thresholds, the metrics, and the job's head applying them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llama_rag.config import load_settings
from llama_rag.errors import InvalidInputError
from pipelines.classify_metrics import multilabel_metrics
from pipelines.finetune import check_args
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune_data import load, split_labels
from pipelines.embedding_head import picked, probabilities
from pipelines.multilabel import fit_multi, indicator, thresholds

LABELS = ["cli", "gui", "audio"]


def write(tmp: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp / "tags.csv"
    path.write_text("text,tags\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return path


def args(tmp: Path, rows, **kw) -> FinetuneArgs:
    return FinetuneArgs(**{"input": [str(write(tmp, rows))], "name": "tags", "text_column": "text",
                           "label_column": "tags", "labels": ",".join(LABELS), "multi_label": True,
                           "method": "embedding-head", "eval_fraction": 0.3, **kw})


def test_label_sets_are_read_in_the_labels_order_and_checked():
    assert split_labels(" gui ; cli;gui;", ";") == ["gui", "cli"]


def test_rows_hold_their_label_set_once_in_the_labels_order(tmp_path):
    rows = [(f"row {i}", "audio; cli" if i % 2 else "gui;gui") for i in range(20)]
    data = load(args(tmp_path, rows))
    assert {r.target for r in data.train + data.eval} == {"cli;audio", "gui"}
    assert data.fingerprint["train_label_counts"]["cli"] == sum(
        "cli" in r.target for r in data.train)
    with pytest.raises(InvalidInputError, match="missing from --labels: 'video'"):
        load(args(tmp_path, rows + [("x", "cli;video")]))


@pytest.mark.parametrize("change,words", [
    (dict(method="lora"), "one-vs-rest embedding head"),
    (dict(label_separator=" "), "--label-separator is empty"),
])
def test_multi_label_flags_are_checked(tmp_path, change, words):
    with pytest.raises(InvalidInputError, match=words):
        check_args(args(tmp_path, [("a", "cli")], **change), load_settings())


def test_the_head_learns_each_label_on_its_own():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < [0.5, 0.3, 0.1]).astype(np.float32)
    x = np.concatenate([y * 2 + rng.normal(0, 0.5, y.shape), rng.normal(0, 1, (300, 5))], axis=1)
    weight, bias, losses = fit_multi(x, y)
    assert weight.shape == (3, 8) and losses[-1][1] < losses[0][1]
    probs = probabilities(x, weight, bias)
    assert ((probs >= 0.5) == (y > 0)).mean() > 0.9


def test_each_threshold_maximises_its_labels_f1():
    probs = np.array([[0.9, 0.30], [0.8, 0.20], [0.4, 0.25], [0.1, 0.05]])
    y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=np.float32)
    bars = thresholds(probs, y)
    assert bars[0] == pytest.approx(0.5)  # the two positives, nothing else; nearest 0.5
    assert bars[1] == pytest.approx(0.25)  # a rare label: well under 0.5
    assert thresholds(probs, np.zeros_like(y)).tolist() == [0.5, 0.5]  # nothing to go by
    labels, confidence = picked(probs, bars, ["cli", "gui"], ";")
    assert labels == ["cli;gui", "cli", "gui", ""]  # 0.4 is under cli's bar
    assert confidence[0] == pytest.approx(0.3) and confidence[3] == pytest.approx(0.9)


def test_metrics_micro_macro_exact_and_per_label():
    m = multilabel_metrics(["cli;gui", "cli", "", "audio"], ["cli", "cli;gui", "gui", None], ";")
    assert m.evaluated == 3 and m.exact_match == pytest.approx(0)
    assert m.per_label["cli"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m.per_label["gui"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m.micro_f1 == pytest.approx(round(2 * 2 / (2 * 2 + 1 + 2), 4))  # tp 2, fp 1, fn 2
    assert m.macro_f1 == pytest.approx((1.0 + 0.0) / 2)
    assert indicator(["cli;audio", "gui"], LABELS, ";").tolist() == [[1, 0, 1], [0, 1, 0]]


def _classify_args(tmp: Path, **kw):
    from pipelines.classify import ClassifyArgs

    write(tmp, [("a", "cli")])
    return ClassifyArgs(**{"input": str(tmp / "tags.csv"), "text_column": "text",
                           "output": tmp / "out", "labels": "cli,gui", "multi_label": True, **kw})


@pytest.mark.parametrize("change,words", [
    (dict(adapter="tags"), "leave --multi-label out"),
    (dict(examples=Path("shots.jsonl")), "--examples does not apply"),
    (dict(mode="generate"), "--mode generate does not apply"),
    (dict(via_serve="http://127.0.0.1:8000"), "--via-serve does not apply"),
    (dict(label_separator=" "), "--label-separator is empty"),
])
def test_the_llms_multi_label_path_refuses_what_it_cannot_take(tmp_path, change, words):
    from pipelines.classify import prepare

    with pytest.raises(InvalidInputError, match=words):
        prepare(_classify_args(tmp_path, **change), load_settings())


def test_multi_label_alone_is_the_llms_yes_no_with_its_own_job_fingerprint(tmp_path):
    from pipelines.classify import _separator, _yes_no, prepare

    args = _classify_args(tmp_path, label_separator="|")
    prep = prepare(args, load_settings())
    assert _yes_no(prep, args) and _separator(prep, args) == "|"
    assert prep.job["multi_label"] == "|"
    single = prepare(_classify_args(tmp_path, multi_label=False), load_settings())
    assert "multi_label" not in single.job  # one label a row: the fingerprint as before

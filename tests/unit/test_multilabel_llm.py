"""The LLM's multi-label path: the yes/no prompt, P(yes) from one step, its calibration,
and `--method auto` choosing between it and the head on held-out micro-F1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llama_rag.config import load_settings
from llama_rag.errors import InvalidInputError
from llama_rag.prompts import LabelSet, PromptSpec, yes_no_messages
from pipelines.finetune import check_args
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune_data import load
from pipelines.method_auto import run_multi_auto
from pipelines.multilabel_llm import (THRESHOLDS_FILE, answer_ids, calibrated_yes,
                                      load_thresholds, p_yes)

SPEC = PromptSpec(labels=LabelSet(labels=["cli", "gui"], descriptions={"gui": "windows"}))


def test_a_rows_questions_differ_only_at_the_end():
    a, b = (yes_no_messages(SPEC, "a text", label) for label in ("cli", "gui"))
    assert a[0] == b[0] and "- gui: windows" in a[0]["content"]
    prefix = "Text: a text\n\nDoes the label \""
    assert a[1]["content"].startswith(prefix) and b[1]["content"].startswith(prefix)
    assert a[1]["content"] != b[1]["content"] and '"gui"' in b[1]["content"]


class Tokenizer:
    ids = {"yes": [1], "Yes": [2], "YES": [3, 9], "no": [4], "No": [5], "NO": [4, 8]}

    def encode(self, word, add_special_tokens=False):
        return self.ids[word]


def test_yes_and_no_are_the_first_tokens_of_their_spellings():
    assert answer_ids(Tokenizer()) == ([1, 2, 3], [4, 5])


def test_p_yes_sums_each_sides_spellings():
    logprobs = {1: math.log(0.3), 2: math.log(0.3), 4: math.log(0.2), 5: math.log(0.2)}
    assert p_yes(logprobs, [1, 2, 3], [4, 5]) == pytest.approx(0.6)
    assert p_yes({}, [1], [4]) == 0.5


def test_calibration_takes_out_the_labels_lean():
    assert calibrated_yes(0.9, 0.9) == pytest.approx(0.5)  # says yes to anything: no news
    assert calibrated_yes(0.97, 0.9) > 0.7 and calibrated_yes(0.6, 0.9) < 0.2
    assert calibrated_yes(0.5, 0.5) == pytest.approx(0.5)


def test_published_bars_are_read_in_the_jobs_label_order(tmp_path):
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps({"thresholds": {"gui": 0.7, "cli": 0.2}}))
    assert load_thresholds(tmp_path, ["cli", "gui"]) == [0.2, 0.7]


def _args(tmp: Path, **kw) -> FinetuneArgs:
    path = tmp / "tags.csv"
    path.write_text("text,tags\n" + "".join(f"row {i},{'cli' if i % 2 else 'gui;cli'}\n"
                                            for i in range(40)))
    return FinetuneArgs(**{"input": [str(path)], "name": "tags", "text_column": "text",
                           "label_column": "tags", "labels": "cli,gui", "multi_label": True,
                           "method": "auto", "eval_fraction": 0.3, **kw})


def test_llm_yes_no_is_a_multi_label_method(tmp_path):
    with pytest.raises(InvalidInputError, match="goes with --multi-label"):
        check_args(_args(tmp_path, method="llm-yes-no", multi_label=False), load_settings())
    check_args(_args(tmp_path, method="llm-yes-no"), load_settings())


def _trainer(tmp: Path, name: str, micro: float, called: list[str]):
    def train():
        called.append(name)
        folder = tmp / name
        folder.mkdir()
        return {"eval_micro_f1": micro, "eval_exact_match": micro / 2, "eval_probs": [[0.1]],
                "thresholds": {"cli": 0.5}}, folder
    return train


@pytest.mark.parametrize("head,llm,chosen", [(0.6, 0.7, "llm-yes-no"), (0.7, 0.6, "embedding-head"),
                                              (0.7, 0.7, "embedding-head")])
def test_auto_keeps_the_better_micro_f1_and_a_tie_goes_to_the_head(tmp_path, head, llm, chosen):
    called: list[str] = []
    data = load(_args(tmp_path))
    out = run_multi_auto(_args(tmp_path), data, _trainer(tmp_path, "embedding-head", head, called),
                         _trainer(tmp_path, "llm-yes-no", llm, called), lambda m: None)
    assert called == ["embedding-head", "llm-yes-no"] and out.chosen == chosen
    assert out.files == tmp_path / chosen and out.files.is_dir()
    loser = "llm-yes-no" if chosen == "embedding-head" else "embedding-head"
    assert not (tmp_path / loser).exists()  # only the published candidate's files are kept
    assert "micro-F1" in out.why and "eval_probs" not in out.metrics
    assert [c["method"] for c in out.metrics["candidates"]] == ["embedding-head", "llm-yes-no"]


def test_auto_skips_the_llm_when_scoring_the_held_out_rows_would_not_fit(tmp_path):
    called: list[str] = []
    args = _args(tmp_path, budget_minutes=0)
    out = run_multi_auto(args, load(args), _trainer(tmp_path, "embedding-head", 0.5, called),
                         _trainer(tmp_path, "llm-yes-no", 0.9, called), lambda m: None)
    assert called == ["embedding-head"] and out.chosen == "embedding-head"
    assert "over --budget-minutes 0" in out.why
    assert np.isclose(out.candidates[0].eval_micro_f1, 0.5)


class _Out:
    def __init__(self, p: float) -> None:
        from types import SimpleNamespace

        lp = {1: SimpleNamespace(logprob=math.log(p)), 4: SimpleNamespace(logprob=math.log(1 - p))}
        self.outputs = [SimpleNamespace(logprobs=[lp], text="")]


class _Engine:
    """Says yes with P 0.8 to a text that names the label, 0.3 otherwise, and 0.4 to a
    content-free text (the lean the calibration divides out)."""

    def generate(self, prompts, params, use_tqdm=False):
        def p(prompt: str) -> float:
            text = prompt.split("Text: ")[1].split("\n\n")[0]
            label = prompt.split('Does the label "')[1].split('"')[0]
            return 0.4 if text in ("N/A", "") else 0.8 if label in text else 0.3
        return [_Out(p(x)) for x in prompts]


class _ChatTokenizer(Tokenizer):
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "\n".join(m["content"] for m in messages)

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def _actor(thresholds=None):
    from pipelines.multilabel_llm import VLLMYesNo

    actor = VLLMYesNo.__new__(VLLMYesNo)  # the engine is faked: no vLLM start
    actor.spec, actor.labels, actor.separator = SPEC, SPEC.labels.labels, "|"
    actor.llm, actor.tokenizer, actor.yes, actor.no = _Engine(), _ChatTokenizer(), [1], [4]
    actor.bars = np.asarray(thresholds or [0.5, 0.5], dtype=np.float32)
    actor.prior, actor.params = None, None
    if thresholds is None:
        actor.prior = actor.scores(["N/A", ""], calibrate=False).mean(axis=0)
    return actor


def test_without_labeled_rows_each_label_is_judged_against_its_lean(monkeypatch):
    monkeypatch.setattr("pipelines.multilabel_llm.truncated", lambda tok, t, n: (t, False))
    out = _actor()({"id": ["a", "b"], "text": ["a cli tool", "a gui and cli app"],
                    "gold": ["cli", "cli|gui"]})
    assert out["label"] == ["cli", "cli|gui"] and out["gold"] == ["cli", "cli|gui"]
    scores = json.loads(out["raw"][0])
    assert list(scores) == ["cli", "gui"] and scores["gui"] < 0.5 < scores["cli"]
    assert scores["cli"] == pytest.approx(calibrated_yes(0.8, 0.4), abs=1e-4)


def test_published_bars_apply_to_the_raw_scores(monkeypatch):
    monkeypatch.setattr("pipelines.multilabel_llm.truncated", lambda tok, t, n: (t, False))
    out = _actor([0.25, 0.9])({"id": ["a"], "text": ["a cli tool"], "gold": [None]})
    assert out["label"] == ["cli"]  # gui's 0.3 clears no bar of 0.9; cli's 0.8 clears 0.25
    assert json.loads(out["raw"][0]) == {"cli": 0.8, "gui": 0.3}

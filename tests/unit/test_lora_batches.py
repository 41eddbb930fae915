"""LoRA training and evaluation batches (pipelines.finetune_train): rows grouped by
length so batches pad little, and the held-out choice read from the loss pass."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from pipelines import finetune_train as ft

LABELS = ["alpha", "beta", "gamma"]
TOKENS = {"alpha": 5, "beta": 6, "gamma": 7}


def _fake_encode(tokenizer, row, spec, max_tokens):
    """A prompt as long as the row's text, the label's token and an end token."""
    return [10 + len(row.text) % 7] * len(row.text), [TOKENS[row.target], 2]


def test_length_grouped_batches_hold_every_row_once_and_pad_less(monkeypatch):
    monkeypatch.setattr(ft, "encode", _fake_encode)
    rng = random.Random(1)
    rows = [{"id": str(i), "text": "x" * rng.randint(3, 200), "target": "alpha"} for i in range(300)]
    frames = [pd.DataFrame(rows[i:i + 128]) for i in range(0, 300, 128)]
    config = {"batch_size": 8, "spec": None, "max_text_tokens": 256}
    batches = list(ft.length_grouped(frames, None, config, seed=3))
    assert sorted(r.id for b, _ in batches for r in b) == sorted(r["id"] for r in rows)
    assert len(batches) == 16 + 16 + 6  # ceil(128/8), ceil(128/8), ceil(44/8): steps per epoch hold
    padded = sum(max(len(p) for p, _ in pairs) * len(pairs) for _, pairs in batches)
    plain = sum(max(len(r["text"]) for r in rows[i:i + 8]) * len(rows[i:i + 8]) for i in range(0, 300, 8))
    assert padded < 0.75 * plain
    again = list(ft.length_grouped(frames, None, config, seed=3))  # a resumed epoch skips the same
    assert [[r.id for r in b] for b, _ in again] == [[r.id for r in b] for b, _ in batches]


def test_the_held_out_choice_from_the_loss_pass_is_the_prompt_passes(monkeypatch):
    """The logits before each answer's first token, in a batch padded to prompt + answer,
    are those at the end of the prompt alone: the choice the classify job makes."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from llama_rag.prompts import PromptSpec
    from pipelines import classify_llm
    from pipelines.classify_labels import load_labels

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=2)).eval()
    monkeypatch.setattr(ft, "encode", _fake_encode)
    monkeypatch.setattr(classify_llm, "first_tokens", lambda tok, labels: [TOKENS[x] for x in labels])
    rows = [{"id": str(i), "text": "y" * (3 + 5 * i), "target": LABELS[i % 3]} for i in range(20)]
    spec = PromptSpec(labels=load_labels(",".join(LABELS), None), instructions="Classify.",
                      calibrate=False)
    config = {"eval_rows": rows, "spec": spec, "max_text_tokens": 256}
    tokenizer = type("T", (), {"pad_token_id": 0})()
    out = ft._evaluate(model, tokenizer, config, "cpu")
    assert out["eval_rows"] == 20 and 0 <= out["eval_accuracy"] <= 1
    with torch.no_grad():
        for row, probs in zip(rows, out["eval_probs"]):
            prompt, _ = _fake_encode(None, ft.Row(**row), None, 256)
            logits = model(input_ids=torch.tensor([prompt])).logits[0, -1, [5, 6, 7]]
            assert probs == pytest.approx(torch.softmax(logits, -1).tolist(), abs=1e-4)

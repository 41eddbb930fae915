"""LoRA early stopping: an eval after each epoch, a stop once the eval loss rises, and the
best epoch's weights kept (pipelines.finetune_train)."""

from __future__ import annotations

import pytest

from pipelines import finetune_train as ft

CONFIG = {"eval_rows": [{"id": "1", "text": "t", "target": "a"}], "max_steps": None}


@pytest.mark.parametrize("step,change,ends", [
    (10, {}, True), (20, {}, True), (15, {}, False),
    (30, {}, False),  # the last step: the final evaluation does it
    (10, {"max_steps": 30}, False),  # an explicit step budget: no epochs to choose from
    (10, {"eval_rows": []}, False), (10, {"early_stopping": False}, False),
])
def test_an_epoch_is_judged_only_when_it_ends_before_the_last_step(step, change, ends):
    assert ft._epoch_ends(step, 10, 30, {**CONFIG, **change}) is ends


def test_the_eval_loss_rising_stops_training_and_the_best_epochs_weights_are_kept(monkeypatch):
    losses = iter([1.0, 0.8, 0.9])
    monkeypatch.setattr(ft, "_evaluate", lambda *a: {"eval_loss": next(losses),
                                                     "eval_accuracy": 0.5, "eval_probs": [[1.0]]})
    weights = iter([{"w": 1}, {"w": 2}, {"w": 3}])
    monkeypatch.setattr(ft, "_weights", lambda model: next(weights))
    state = {"step": 0, "epochs_eval": [], "best": None}
    kept, stops = None, []
    for epoch in (1, 2, 3):
        state["step"] = epoch * 10
        new = ft._epoch_eval(object(), state, 0, None, CONFIG, None)
        kept = new if new is not None else kept
        stops.append(ft._stop(state, 0, 1, None))
    assert stops == [False, False, True] and kept == {"w": 2}
    assert state["best"]["epoch"] == 2 and state["best"]["eval_loss"] == 0.8
    assert state["best"]["eval_probs"] == [[1.0]]  # what auto blends: the kept epoch's
    assert [e["eval_loss"] for e in state["epochs_eval"]] == [1.0, 0.8, 0.9]


def test_other_ranks_neither_evaluate_nor_decide(monkeypatch):
    monkeypatch.setattr(ft, "_evaluate", lambda *a: pytest.fail("rank 1 evaluated"))
    state = {"step": 10, "epochs_eval": [], "best": None}
    assert ft._epoch_eval(object(), state, 1, None, CONFIG, None) is None
    assert ft._stop(state, 1, 1, None) is False and state["epochs_eval"] == []


def test_a_time_budget_stops_at_an_epochs_end_when_another_would_not_fit(monkeypatch):
    """`--method auto`'s --budget-minutes: after 2 epochs (20 steps) in 600 s, a third
    would end at 900 s: past a 800 s budget, inside a 1,000 s one; no budget, no stop."""
    monkeypatch.setattr(ft.time, "perf_counter", lambda: 1600.0)
    assert ft._over_budget({"budget_s": 800}, 1000.0, 20, 10) is True
    assert ft._over_budget({"budget_s": 1000}, 1000.0, 20, 10) is False
    assert ft._over_budget({"budget_s": None}, 1000.0, 20, 10) is False
    state = {"step": 20, "epochs_eval": [{"epoch": 1, "eval_loss": 1.0}, {"epoch": 2, "eval_loss": 0.8}],
             "best": {"epoch": 2, "eval_loss": 0.8}}
    assert ft._stop(state, 0, 1, None, over_budget=True) is True
    assert ft._stop(state, 0, 1, None, over_budget=False) is False


def test_lora_epochs_default_to_a_ceiling_of_four_only_where_held_out_rows_stop_early():
    from pipelines.finetune_args import FinetuneArgs

    args = FinetuneArgs(input=["x"], name="a")  # eval_fraction 0.1 by default
    assert args.lora_epochs() == 4.0
    assert args.model_copy(update={"eval_fraction": 0.0}).lora_epochs() == 2.0
    assert args.model_copy(update={"early_stopping": False}).lora_epochs() == 2.0
    assert args.model_copy(update={"max_steps": 50}).lora_epochs() == 2.0
    assert args.model_copy(update={"epochs": 3.0, "eval_fraction": 0.0}).lora_epochs() == 3.0


def _stopped_state(losses: list[float]) -> dict:
    epochs = [{"epoch": i + 1, "step": 10 * (i + 1), "eval_loss": v} for i, v in enumerate(losses)]
    best = min(epochs, key=lambda e: e["eval_loss"])
    return {"step": epochs[-1]["step"], "epochs_eval": epochs,
            "best": {**best, "eval_accuracy": 0.7, "eval_rows": 5}}


def test_a_stop_publishes_the_figures_on_record_without_evaluating_again(monkeypatch):
    """After an early stop (epoch 3 worse than 2) the best epoch's weights go back and its
    recorded figures are published; after a budget stop on the best epoch, that epoch's."""
    import peft

    monkeypatch.setattr(ft, "_evaluate", lambda *a: pytest.fail("evaluated again"))
    restored = []
    monkeypatch.setattr(peft, "set_peft_model_state_dict", lambda model, w: restored.append(w))
    last, epoch = ft._final_figures(object(), _stopped_state([1.0, 0.8, 0.9]), {"w": 2}, None, CONFIG, None)
    assert (epoch, last, restored) == (2, {"eval_loss": 0.8, "eval_accuracy": 0.7, "eval_rows": 5}, [{"w": 2}])
    restored.clear()
    last, epoch = ft._final_figures(object(), _stopped_state([1.0, 0.8]), {"w": 2}, None, CONFIG, None)
    assert (epoch, last["eval_loss"], restored) == (2, 0.8, [])


def test_the_last_epoch_of_a_full_run_is_evaluated_once_and_kept_when_it_is_best(monkeypatch):
    import peft

    calls = []
    monkeypatch.setattr(ft, "_evaluate", lambda *a: calls.append(1) or {"eval_loss": 0.7})
    monkeypatch.setattr(peft, "set_peft_model_state_dict", lambda *a: pytest.fail("restored"))
    state = {**_stopped_state([1.0, 0.8]), "step": 30}  # epoch 3 ran to the last step
    last, epoch = ft._final_figures(object(), state, {"w": 2}, None, CONFIG, None)
    assert (calls, epoch, last) == ([1], 3, {"eval_loss": 0.7})

"""The Ray Train worker loop: LoRA on the configured model, data parallel, resumable.

Each worker loads the model (float32 on a CPU: without AMX/AVX512-BF16, bf16 matrix
products are far slower), wraps it in PEFT LoRA and in DDP (``prepare_model``: gloo
on CPU, NCCL on GPU), and trains on its shard of the Ray Dataset. Every
``checkpoint_every`` steps all workers report and rank 0 hands Ray Train a
checkpoint (adapter, optimizer, scheduler, step, loss history); a run started again
with the same name gets it back from ``ray.train.get_checkpoint()`` and continues at
that step, skipping the batches of the epoch it had already seen.

With held-out rows, rank 0 evaluates at the end of every epoch (``early_stopping``):
training stops once the eval loss rises above the best so far, and the adapter
published is the best epoch's (its weights kept in memory and in the checkpoint), so
``--epochs`` is a ceiling the held-out rows choose under. Given ``budget_s``
(`--method auto`), training also stops at the end of an epoch when the next one would
end past it.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from llama_rag.prompts import PromptSpec
from pipelines.finetune_data import IGNORE, Row, collate, encode

STATE = "trainer_state.json"
GROUP = 16  # batches sorted by length together (the padding saved: docs/finetune.md)


def _log(message: str) -> None:
    print(f"[finetune] {message}", flush=True)


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


BEST = "best_epoch.safetensors"


def _save(model, opt, sched, state: dict[str, Any], folder: Path,
          best: dict[str, Any] | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    model.save_pretrained(folder)
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
               folder / "optimizer.pt")
    if best is not None:
        save_file(best, str(folder / BEST))
    (folder / STATE).write_text(json.dumps(state))


def _restore(model, folder: Path
             ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    state = json.loads((folder / STATE).read_text())
    best = load_file(folder / BEST) if (folder / BEST).is_file() else None
    return state, torch.load(folder / "optimizer.pt", weights_only=False), best


def _weights(model) -> dict[str, Any]:
    """A copy of the adapter's weights (what the best epoch is kept as)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone().cpu().contiguous()
            for k, v in get_peft_model_state_dict(_unwrapped(model)).items()}


def _unwrapped(model):
    """The PEFT model inside DDP's wrapper (what is evaluated and saved)."""
    return model.module if hasattr(model, "module") else model


def _lora_model(config: dict[str, Any], device):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=dtype)
    lora = LoraConfig(r=config["lora_rank"], lora_alpha=config["lora_alpha"],
                      target_modules=config["target_modules"], lora_dropout=0.05, bias="none",
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _tensors(batch, device):
    import torch

    def t(values):
        return torch.tensor(values, dtype=torch.long, device=device)

    return (t(batch.input_ids), t(batch.attention_mask), t(batch.position_ids),
            t(batch.labels), batch.keep)


def answer_logits(model, batch, device):
    """(float logits of the last ``keep`` positions, their labels)."""
    ids, mask, pos, labels, keep = _tensors(batch, device)
    return model(input_ids=ids, attention_mask=mask, position_ids=pos,
                 logits_to_keep=keep).logits.float(), labels


def answer_loss(model, batch, device, row_weights: list[float] | None = None):
    """Mean cross-entropy over the answer tokens only (prompt positions are IGNORE).
    ``row_weights`` (``--class-weight balanced``): each row's mean answer-token loss
    times its label's weight, averaged over the batch (the weights average 1 over the
    training rows, so the loss keeps its scale and only the labels' shares move)."""
    return _loss(*answer_logits(model, batch, device), row_weights, device)


def _loss(logits, labels, row_weights: list[float] | None, device):
    import torch
    import torch.nn.functional as F

    if row_weights is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE)
    per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                ignore_index=IGNORE, reduction="none").view(labels.shape)
    per_row = per_token.sum(1) / (labels != IGNORE).sum(1).clamp(min=1)
    return (per_row * torch.tensor(row_weights, dtype=per_row.dtype, device=device)).mean()


def by_length(pairs: list[tuple[list[int], list[int]]]) -> list[int]:
    """Row indices from shortest to longest encoding: batches of neighbours pad little."""
    return sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))


def length_grouped(frames, tokenizer, config: dict[str, Any], seed: int):
    """Training batches of ``batch_size`` rows, as (rows, encodings): each frame of
    ``GROUP`` batches (already shuffled) is sorted by length, cut into batches, and
    those are shuffled again (HF Trainer's group_by_length), so a batch pads to
    neighbours' lengths, not to the longest of eight random rows."""
    import random

    order = random.Random(seed)
    size = config["batch_size"]
    for frame in frames:
        rows = [Row(id=str(r.id), text=r.text, target=r.target) for r in frame.itertuples()]
        pairs = [encode(tokenizer, r, config["spec"], config["max_text_tokens"]) for r in rows]
        ranked = by_length(pairs)
        batches = [ranked[i:i + size] for i in range(0, len(ranked), size)]
        order.shuffle(batches)
        for batch in batches:
            yield [rows[i] for i in batch], [pairs[i] for i in batch]


def _evaluate(model, tokenizer, config: dict[str, Any], device) -> dict[str, Any]:
    """Eval loss, and for classify the choice-mode answer (argmax over the labels' first
    tokens, as the job picks) with accuracy, per-label F1 and each row's label
    probabilities (what `--method auto` blends with the embedding head's)."""
    import torch

    from pipelines.classify_metrics import metrics
    from pipelines.classify_llm import first_tokens

    rows = [Row(**r) for r in config["eval_rows"]]
    if not rows:
        return {}
    spec = config["spec"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    losses: list[float] = []
    labels = spec.labels.labels if isinstance(spec, PromptSpec) else []
    token_ids = first_tokens(tokenizer, labels) if labels else None
    pairs = [encode(tokenizer, r, spec, config["max_text_tokens"]) for r in rows]
    predicted, probs = [""] * len(rows), [[]] * len(rows)
    with torch.no_grad():
        ranked = by_length(pairs)
        for i in range(0, len(ranked), 16):
            chunk = ranked[i:i + 16]
            batch = collate([pairs[j] for j in chunk], pad)
            logits, answer = answer_logits(model, batch, device)
            losses.append(_loss(logits, answer, None, device).item() * len(chunk))
            if token_ids:  # the logits before each answer's first token: the choice
                first = torch.tensor([batch.keep - 1 - len(pairs[j][1]) for j in chunk])
                chosen = logits[torch.arange(len(chunk)), first][:, token_ids]
                for j, p in zip(chunk, torch.softmax(chosen, -1).tolist()):
                    predicted[j] = labels[max(range(len(p)), key=p.__getitem__)]
                    probs[j] = [round(v, 5) for v in p]
    model.train()
    out: dict[str, Any] = {"eval_loss": round(sum(losses) / len(rows), 4), "eval_rows": len(rows)}
    if token_ids:
        m = metrics(predicted, [r.target for r in rows])
        out.update(eval_accuracy=m.accuracy, per_label=m.per_label, eval_probs=probs)
    return out


def train_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of the TorchTrainer (pipelines.finetune)."""
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from transformers import AutoTokenizer

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    _log(f"worker {rank}/{world} on node {ray.get_runtime_context().get_node_id()}")
    torch.set_num_threads(config["threads"])  # Ray gives each worker one thread otherwise
    torch.manual_seed(config["seed"])
    device = ray.train.torch.get_device()
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model = _lora_model(config, device)
    state: dict[str, Any] = {"step": 0, "losses": [], "rows": 0, "seconds": 0.0,
                             "resumed_from_step": None, "epochs_eval": [], "best": None}
    resumed = ray.train.get_checkpoint()
    saved = best = None
    if resumed:
        with resumed.as_directory() as folder:
            state, saved, best = _restore(model, Path(folder))
        state["resumed_from_step"] = state["step"]
        state.setdefault("epochs_eval", [])  # a checkpoint from before early stopping
        state.setdefault("best", None)
        if rank == 0:
            _log(f"resuming from the checkpoint at step {state['step']}")
    model = ray.train.torch.prepare_model(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config["learning_rate"], weight_decay=0.0)
    per_worker = config["train_rows"] // world
    steps_per_epoch = max(1, math.ceil(per_worker / config["batch_size"]))
    total = config["max_steps"] or max(1, math.ceil(config["epochs"] * steps_per_epoch))
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup)))
    if saved:
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
    shard = ray.train.get_dataset_shard("train")
    started, first_step = time.perf_counter(), state["step"]
    weights = config.get("class_weights")  # --class-weight balanced: by label
    if rank == 0:
        _log(f"{config['train_rows']} training rows, {world} worker(s), batch {config['batch_size']} "
             f"per worker, {steps_per_epoch} steps per epoch, {total} steps")
    while state["step"] < total:
        epoch, skip = divmod(state["step"], steps_per_epoch)
        # a new order each epoch over the whole shard (fine-tuning sets are small)
        frames = shard.iter_batches(batch_size=config["batch_size"] * GROUP, batch_format="pandas",
                                    local_shuffle_buffer_size=max(per_worker, 1),
                                    local_shuffle_seed=config["seed"] + epoch)
        i = -1
        for i, (rows, pairs) in enumerate(length_grouped(frames, tokenizer, config,
                                                         config["seed"] + epoch)):
            if i >= steps_per_epoch or state["step"] >= total:
                break
            if i < skip:
                continue
            batch = collate(pairs, pad)
            step_started = time.perf_counter()
            loss = answer_loss(model, batch, device,
                               [weights[r.target] for r in rows] if weights else None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            value = loss.detach()
            if world > 1:
                dist.all_reduce(value, op=dist.ReduceOp.AVG)
            state["step"] += 1
            state["rows"] += len(rows) * world
            state["seconds"] += time.perf_counter() - step_started
            state["losses"].append([state["step"], round(value.item(), 4)])
            if rank == 0:
                _progress(state, started, first_step, total, world, config)
            if _epoch_ends(state["step"], steps_per_epoch, total, config):
                kept = _epoch_eval(model, state, rank, tokenizer, config, device)
                best = kept if kept is not None else best
                if _stop(state, rank, world, device,
                         _over_budget(config, started, state["step"] - first_step, steps_per_epoch)):
                    total = state["step"]
            if state["step"] % config["checkpoint_every"] == 0 or state["step"] == total:
                _report(model, opt, sched, state, rank, tokenizer, config, device,
                        final=state["step"] == total, best=best)
        else:
            if state["step"] < total and i + 1 < steps_per_epoch:
                state["step"] = (epoch + 1) * steps_per_epoch  # a short shard: next epoch


def _epoch_ends(step: int, steps_per_epoch: int, total: int, config: dict[str, Any]) -> bool:
    """An epoch ended before the last step, and there are held-out rows to judge it by."""
    return (config.get("early_stopping", True) and bool(config["eval_rows"])
            and not config["max_steps"] and step % steps_per_epoch == 0 and step < total)


def _epoch_eval(model, state, rank, tokenizer, config, device) -> dict[str, Any] | None:
    """Rank 0: the epoch's eval loss into ``state``; the weights, when they are the best
    so far (None otherwise, and on other ranks)."""
    if rank != 0:
        return None
    m = _evaluate(_unwrapped(model), tokenizer, config, device)
    epoch = len(state["epochs_eval"]) + 1
    state["epochs_eval"].append({"epoch": epoch, "step": state["step"],
                                 "eval_loss": m["eval_loss"],
                                 "eval_accuracy": m.get("eval_accuracy")})
    _log(f"epoch {epoch}: eval loss {m['eval_loss']}"
         + (f", accuracy {m['eval_accuracy']}" if m.get("eval_accuracy") is not None else ""))
    if state["best"] is None or m["eval_loss"] < state["best"]["eval_loss"]:
        state["best"] = {"epoch": epoch, "step": state["step"], **m}
        return _weights(model)
    return None


def _over_budget(config: dict[str, Any], started: float, steps_done: int,
                 steps_per_epoch: int) -> bool:
    """Whether another epoch, at this run's pace so far (its evaluations included), would
    end past ``budget_s`` (`--method auto`'s --budget-minutes)."""
    budget = config.get("budget_s")
    if not budget or steps_done <= 0:
        return False
    elapsed = time.perf_counter() - started
    return elapsed + elapsed / steps_done * steps_per_epoch > budget


def _stop(state, rank: int, world: int, device, over_budget: bool = False) -> bool:
    """Whether to stop after this epoch: its eval loss rose above the best, or the next
    epoch would not fit the time budget (rank 0 decides for all)."""
    import torch
    import torch.distributed as dist

    worse = rank == 0 and state["best"] is not None and \
        state["epochs_eval"][-1]["eval_loss"] > state["best"]["eval_loss"]
    stop = worse or (rank == 0 and over_budget)
    if world > 1:
        flag = torch.tensor([1 if stop else 0], device=device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    if rank == 0 and worse:
        _log(f"eval loss rose after epoch {state['best']['epoch']}: stopping, keeping that epoch")
    elif rank == 0 and stop:
        _log(f"another epoch would pass the time budget: stopping after epoch "
             f"{len(state['epochs_eval'])}, keeping epoch {state['best']['epoch']}")
    return stop


def _progress(state, started, first_step, total, world, config) -> None:
    if state["step"] % config["log_every"] and state["step"] != total:
        return
    elapsed = time.perf_counter() - started
    done = state["step"] - first_step
    rate = done * config["batch_size"] * world / elapsed if elapsed else 0.0
    eta = (total - state["step"]) * elapsed / done if done else 0.0
    _log(f"step {state['step']}/{total} loss {state['losses'][-1][1]:.4f} "
         f"{rate:.1f} rows/s ETA {_eta(eta)}")


def _final_figures(inner, state, best, tokenizer, config, device) -> tuple[dict[str, Any], int]:
    """(the held-out figures of the weights published, the epoch they are from). The
    best epoch's weights go back into ``inner`` when the last epoch's eval loss was
    higher; an early or budget stop has just judged the last epoch, so its figures are
    on record and not computed again."""
    from peft import set_peft_model_state_dict

    evaluated = bool(state["epochs_eval"]) and state["epochs_eval"][-1]["step"] == state["step"]
    kept = state["best"]
    judged = evaluated and kept is not None and (kept["step"] == state["step"] or best is not None)
    last = {} if judged else _evaluate(inner, tokenizer, config, device)
    if kept is not None and kept["step"] == state["step"]:
        return _figures(kept), kept["epoch"]
    if kept is not None and best is not None and last.get("eval_loss", math.inf) > kept["eval_loss"]:
        set_peft_model_state_dict(inner, best)
        _log(f"published: epoch {kept['epoch']}'s weights (eval loss {kept['eval_loss']}, "
             f"the last epoch's was higher)")
        return _figures(kept), kept["epoch"]
    return last, len(state["epochs_eval"]) + (0 if evaluated else 1)


def _figures(kept: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kept.items() if k not in ("epoch", "step")}


def _report(model, opt, sched, state, rank, tokenizer, config, device, final: bool,
            best: dict[str, Any] | None = None) -> None:
    """Every worker reports (a barrier); rank 0 attaches the checkpoint, and at the end
    the evaluation (of the best epoch's weights, when an earlier epoch's eval loss was
    lower than the last one's: those weights are then the checkpoint's adapter)."""
    import ray.train
    from ray.train import Checkpoint

    metrics: dict[str, Any] = {"step": state["step"], "loss": state["losses"][-1][1]}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    inner = _unwrapped(model)
    if final:
        last, epochs = _final_figures(inner, state, best, tokenizer, config, device)
        metrics.update(last)
        if state["epochs_eval"]:  # each epoch's held-out figures, and the one published
            metrics.update(epochs_eval=state["epochs_eval"], published_epoch=epochs)
        metrics["losses"] = state["losses"]
        metrics.update(train_rows_seen=state["rows"], train_seconds=round(state["seconds"], 2),
                       resumed_from_step=state["resumed_from_step"])
    with tempfile.TemporaryDirectory() as folder:
        _save(inner, opt, sched, state, Path(folder), best)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
    _log(f"checkpoint at step {state['step']}" + (" (final)" if final else ""))

"""Fine-tune the configured model for a task: a LoRA adapter trained as a Ray Train job,
or a linear head on the embedder, published to the adapter registry.

    ray job submit --working-dir . -- python -m pipelines.finetune \\
        --input data/train.csv --task classify --text-column text --label-column label \\
        --labels-file labels.yaml --name sections --workers 2

The driver checks every argument and row before Ray starts (exit 2 with the
reason), then runs a ``TorchTrainer`` (pipelines.finetune_train) whose checkpoints
live under ``adapters.checkpoints`` in a run named after the adapter and a hash of
the data and hyper-parameters: the same command, re-run after a crash or a kill,
resumes from the last checkpoint. At the end the adapter, its manifest, the rows
that could not be used (``errors.jsonl``) and a loss curve are published as a new
version of ``adapters.dir/NAME``. ``llama-rag finetune`` runs the same code.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import click
from pydantic import BaseModel

from llama_rag.adapters import (VLLM_LORA_RANKS, AdapterStore, BaseModelRef, Manifest,
                                base_ref, check_name)
from llama_rag.commands import stdout_for_json
from llama_rag.config import Settings, load_settings
from llama_rag.errors import GateRefusedError, InvalidInputError, LlamaRagError
from llama_rag.prompts import ExtractSpec, PromptSpec
from pipelines.finetune_args import FinetuneArgs, options
from pipelines import classify_io
from pipelines.finetune_data import TrainingData, load

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class FinetuneSummary(BaseModel):
    name: str
    version: str
    method: str
    task: str
    path: str
    train_rows: int
    eval_rows: int
    error_rows: int
    steps: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    eval_accuracy: float | None = None
    per_label_f1: dict[str, float] = {}
    eval_micro_f1: float | None = None  # --multi-label (eval_accuracy: whole sets right)
    eval_macro_f1: float | None = None
    seconds: float
    train_rows_per_s: float | None = None
    resumed_from_step: int | None = None
    epochs_eval: list[dict[str, Any]] = []  # LoRA with held-out rows: each epoch's figures
    published_epoch: int | None = None  # the epoch whose weights were published
    chosen: str | None = None  # --method auto: the candidate published
    chosen_because: str | None = None
    candidates: list[dict[str, Any]] = []


def check_args(args: FinetuneArgs, settings: Settings) -> None:
    check_name(args.name)
    if args.method == "auto" and not args.eval_input and args.eval_fraction == 0:
        raise InvalidInputError("--method auto picks the method on held-out rows: give "
                                "--eval-input or an --eval-fraction above 0", param="eval-fraction")
    if args.multi_label and (args.method == "lora" or args.task != "classify"):
        raise InvalidInputError("--multi-label trains a one-vs-rest embedding head or the "
                                "LLM's per-label bars: use --task classify with --method "
                                "embedding-head, llm-yes-no or auto", param="multi-label")
    if args.class_weight != "none" and (args.multi_label or args.task != "classify"
                                        or args.method == "llm-yes-no"):
        raise InvalidInputError("--class-weight weighs the labels of a single-label "
                                "classifier: use it with --task classify, without "
                                "--multi-label", param="class-weight")
    if args.method == "llm-yes-no" and not args.multi_label:
        raise InvalidInputError("--method llm-yes-no asks the LLM of each label of a row: it "
                                "goes with --multi-label", param="method")
    if args.multi_label and not args.label_separator.strip():
        raise InvalidInputError("--label-separator is empty", param="label-separator")
    if args.method in ("lora", "auto") and not args.multi_label:
        if args.lora_rank not in VLLM_LORA_RANKS:
            raise InvalidInputError(f"--lora-rank {args.lora_rank}: vLLM serves ranks "
                                    f"{', '.join(map(str, VLLM_LORA_RANKS))}", param="lora-rank")
        if args.lora_rank > settings.adapters.max_lora_rank:
            raise InvalidInputError(
                f"--lora-rank {args.lora_rank} is above adapters.max_lora_rank "
                f"({settings.adapters.max_lora_rank}), the largest rank the servers load",
                param="lora-rank")
        if not [m for m in args.target_modules.split(",") if m.strip()]:
            raise InvalidInputError("--target-modules is empty", param="target-modules")
    if args.gpus_per_worker == 0 and args.cpus_per_worker < 1:
        raise InvalidInputError("--cpus-per-worker must be at least 1", param="cpus-per-worker")


SKEW = 4  # the commonest label's rows over the rarest's at which the job mentions --class-weight


def skewed_labels(args: FinetuneArgs, data: TrainingData) -> str | None:
    """A note when single-label training rows are skewed and nothing balances them: an
    unweighted classifier then rarely predicts the rare labels (docs/finetune.md)."""
    if args.multi_label or args.task != "classify" or args.class_weight != "none" or not data.train:
        return None
    counts = {label: 0 for label in data.labels.labels}
    for r in data.train:
        counts[r.target] = counts.get(r.target, 0) + 1
    common, rare = max(counts, key=counts.get), min(counts, key=counts.get)
    if counts[common] < SKEW * max(counts[rare], 1):
        return None
    return (f"labels are skewed ({common}: {counts[common]} rows, {rare}: {counts[rare]}): "
            "if every label matters, --class-weight balanced weighs them as if balanced")


def run_name(args: FinetuneArgs, data: TrainingData, base: BaseModelRef) -> str:
    """The Ray Train run: the adapter's name and what decides its weights, so the same
    command resumes and a changed one starts afresh."""
    decided = {"data": data.fingerprint, "base": base.hash, "spec": data.spec.model_dump(mode="json")
               if data.spec else None, **args.model_dump(mode="json", exclude={
                   "name", "input", "eval_input", "json_output", "workers", "cpus_per_worker",
                   "gpus_per_worker", "placement_strategy", "checkpoint_every"})}
    return f"{args.name}-{classify_io.short_hash(decided)}"


def _storage(settings: Settings) -> str:
    from llama_rag.location import is_uri

    location = settings.adapters.checkpoints
    return location if is_uri(location) else str(Path(location).expanduser().resolve())


def _train_lora(args: FinetuneArgs, data: TrainingData, model_path: str, name: str,
                settings: Settings, echo) -> tuple[dict[str, Any], Path]:
    """Run the TorchTrainer; returns the final metrics and a local copy of the adapter."""
    from llama_rag.ray_runtime import ensure_ray

    ensure_ray(settings.ray.num_cpus, dashboard=True)
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from pipelines.embedding_head import label_weights
    from pipelines.finetune_train import train_loop

    use_gpu = args.gpus_per_worker > 0
    resources = {"CPU": args.cpus_per_worker, **({"GPU": args.gpus_per_worker} if use_gpu else {})}
    config = {
        "model_path": model_path, "spec": data.spec, "eval_rows": [r.model_dump() for r in data.eval],
        "train_rows": len(data.train), "batch_size": args.batch_size, "epochs": args.lora_epochs(),
        "max_steps": args.max_steps, "learning_rate": args.learning_rate,
        "early_stopping": args.early_stopping,
        "budget_s": args.budget_minutes * 60 if args.method == "auto" else None,
        "class_weights": label_weights(data) if args.class_weight == "balanced" else None,
        "lora_rank": args.lora_rank, "lora_alpha": args.lora_alpha,
        "target_modules": [m.strip() for m in args.target_modules.split(",") if m.strip()],
        "threads": args.cpus_per_worker, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "log_every": 5,
        "max_text_tokens": args.max_text_tokens}
    trainer = TorchTrainer(
        train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=use_gpu,
                                     resources_per_worker=resources,
                                     placement_strategy=args.placement_strategy),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=_storage(settings),
                             failure_config=FailureConfig(max_failures=2)),
        datasets={"train": ray.data.from_items(_shuffled(data.train, args.seed))})
    echo(f"training {args.name} as Ray Train run {name} in {_storage(settings)}")
    result = trainer.fit()
    if result.checkpoint is None:
        raise LlamaRagError(f"training run {name} ended without a checkpoint: {result.error}")
    local = Path(tempfile.mkdtemp(prefix="llama-rag-adapter-"))
    with result.checkpoint.as_directory() as folder:
        for f in ADAPTER_FILES:
            shutil.copy(Path(folder) / f, local / f)
    return dict(result.metrics or {}), local


def _shuffled(rows, seed: int) -> list[dict[str, Any]]:
    """The rows in a seeded random order: inputs are often sorted (by label, by date), and
    a worker's shuffle buffer only mixes neighbours; trained label by label, the model
    learns the last label (accuracy 0.74 instead of 0.9 on 128 sorted rows per label)."""
    import random

    out = [r.model_dump() for r in rows]
    random.Random(seed).shuffle(out)
    return out


def loss_curve(losses: list[list[float]], eval_loss: float | None, out: Path,
               epochs: list[dict[str, Any]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if losses:
        steps, values = zip(*losses)
        ax.plot(steps, values, label="train loss (answer tokens)")
    if eval_loss is not None and losses:
        ax.axhline(eval_loss, color="tab:orange", linestyle="--", label=f"eval loss {eval_loss:.3f}")
    if epochs:
        ax.plot([e["step"] for e in epochs], [e["eval_loss"] for e in epochs], "o",
                color="tab:orange", label="eval loss after each epoch")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if losses:  # a head or the LLM's bars have no curve to label
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _clean_adapter_config(folder: Path, base: BaseModelRef) -> None:
    """Name the base model, not the worker's local path, in adapter_config.json."""
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base.name
    cfg_path.write_text(json.dumps(cfg, indent=2))


def run(args: FinetuneArgs, settings: Settings, echo: Callable[[str], None] = print) -> FinetuneSummary:
    """Check, train, publish; the summary is also the manifest's record of the run."""
    from indexing.embedder import resolve_embedder
    from llama_rag.model_files import resolve_llm

    check_args(args, settings)
    data = load(args)
    started = time.perf_counter()
    echo(f"{len(data.train)} training rows, {len(data.eval)} eval rows, {len(data.errors)} "
         f"rows unusable (listed in errors.jsonl)")
    skew = skewed_labels(args, data)
    if skew:
        echo(skew)
    store = AdapterStore.of(settings.adapters)
    method, head_weight, auto = args.method, None, None
    if args.multi_label:
        auto = _multi_label(args, data, settings, echo)
        metrics, files, method, name = auto.metrics, auto.files, auto.chosen, None
        base = resolve_embedder(settings).base() if method == "embedding-head" \
            else _llm_base(settings)
        if args.method != "auto":
            auto = None
    elif args.method == "embedding-head":
        from pipelines.embedding_head import train_head

        ref = resolve_embedder(settings)
        base = ref.base()
        metrics, files = train_head(data, ref, settings, args.seed, echo,
                                    balanced=args.class_weight == "balanced")
        name = None
    elif args.method == "auto":
        auto = _auto(args, data, settings, echo)
        metrics, files, name, head_weight = auto.metrics, auto.files, auto.lora_run, auto.head_weight
        method = "embedding-head" if auto.chosen == "embedding-head" else "lora"
        base = resolve_embedder(settings).base() if method == "embedding-head" else _llm_base(settings)
    else:
        ref = resolve_llm(settings)
        base = _llm_base(settings)
        name = run_name(args, data, base)
        metrics, files = _train_lora(args, data, ref.path, name, settings, echo)
        _clean_adapter_config(files, base)
    metrics.pop("eval_probs", None)  # every eval row's probabilities: auto's, not the manifest's
    (files / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in data.errors))
    losses = metrics.pop("losses", [])
    loss_curve(losses, metrics.get("eval_loss"), files / "loss_curve.png",
               metrics.get("epochs_eval") or [])
    seconds = time.perf_counter() - started
    hyper = args.model_dump(mode="json", exclude={"input", "eval_input", "json_output", "name",
                                                  "gate", "min_eval_accuracy", "gate_max_drop"})
    refused = gate_reasons(args, metrics, _current(store, args.name))
    if refused:
        shutil.rmtree(files, ignore_errors=True)
        if name:
            _forget_run(name, settings)
        raise GateRefusedError(f"gate refused adapter {args.name}: {'; '.join(refused)}; "
                               f"CURRENT stays {store.current(args.name) or 'unset'}")
    manifest = store.publish(files, Manifest(
        name=args.name, method=method, task=args.task, base_model=base, head_weight=head_weight,
        multi_label_separator=args.label_separator if args.multi_label else None,
        labels=data.labels.labels if data.labels else [],
        prompt=data.spec if isinstance(data.spec, PromptSpec) else None,
        extraction=data.spec if isinstance(data.spec, ExtractSpec) else None,
        data=data.fingerprint, hyperparameters=hyper,
        metrics={k: v for k, v in metrics.items() if k not in ("step",)},
        lora_rank=args.lora_rank if method == "lora" else None))
    shutil.rmtree(files, ignore_errors=True)
    if name:
        _forget_run(name, settings)
    per_label = metrics.get("per_label") or {}
    recent = [loss for _, loss in losses[-10:]]
    seen = metrics.get("train_rows_seen")
    return FinetuneSummary(
        name=args.name, version=manifest.version, method=method, task=args.task,
        path=str(store.location), train_rows=len(data.train), eval_rows=len(data.eval),
        error_rows=len(data.errors), steps=metrics.get("step"),
        train_loss=round(sum(recent) / len(recent), 4) if recent else metrics.get("train_loss"),
        eval_loss=metrics.get("eval_loss"), eval_accuracy=metrics.get("eval_accuracy"),
        per_label_f1={k: v["f1"] for k, v in per_label.items()}, seconds=round(seconds, 1),
        eval_micro_f1=metrics.get("eval_micro_f1"), eval_macro_f1=metrics.get("eval_macro_f1"),
        train_rows_per_s=round(seen / metrics["train_seconds"], 2)
        if seen and metrics.get("train_seconds") else None,
        resumed_from_step=metrics.get("resumed_from_step"),
        epochs_eval=metrics.get("epochs_eval") or [], published_epoch=metrics.get("published_epoch"),
        chosen=auto.chosen if auto else None, chosen_because=auto.why if auto else None,
        candidates=[c.model_dump(exclude_none=True) for c in auto.candidates] if auto else [])


def _llm_base(settings: Settings) -> BaseModelRef:
    from llama_rag.model_files import resolve_llm

    ref = resolve_llm(settings)
    return base_ref(ref.path, ref.name)


def _auto(args: FinetuneArgs, data: TrainingData, settings: Settings, echo):
    """`--method auto` (pipelines.method_auto) with this job's embedder and LoRA trainer."""
    from indexing.embedder import job_embedder, resolve_embedder
    from llama_rag.model_files import resolve_llm
    from pipelines.method_auto import run_auto

    encoder = job_embedder(resolve_embedder(settings), settings)
    base = _llm_base(settings)
    name = run_name(args, data, base)

    def train_lora():
        metrics, files = _train_lora(args, data, resolve_llm(settings).path, name, settings, echo)
        _clean_adapter_config(files, base)
        return metrics, files, name

    return run_auto(args, data, encoder.encode, train_lora, echo)


def _multi_label(args: FinetuneArgs, data: TrainingData, settings: Settings, echo):
    """`--multi-label`: the one-vs-rest head, the LLM's yes/no per label, or (auto) the
    better of the two on the held-out rows (pipelines.method_auto.run_multi_auto)."""
    from indexing.embedder import resolve_embedder
    from pipelines.method_auto import Candidate, Outcome, run_multi_auto
    from pipelines.multilabel import train_multi_head
    from pipelines.multilabel_llm import train_llm_multi

    def head():
        return train_multi_head(data, resolve_embedder(settings), settings, args.seed,
                                args.label_separator, echo)

    def llm():
        return train_llm_multi(data, settings, args.label_separator, echo)

    if args.method == "auto":
        return run_multi_auto(args, data, head, llm, echo)
    metrics, files = llm() if args.method == "llm-yes-no" else head()
    chosen = "llm-yes-no" if args.method == "llm-yes-no" else "embedding-head"
    return Outcome(chosen=chosen, why="asked for", candidates=[Candidate(method=chosen)],
                   metrics=metrics, files=files)


def _current(store: AdapterStore, name: str) -> Manifest | None:
    return store.manifest(name) if store.current(name) else None


def gate_reasons(args: FinetuneArgs, metrics: dict[str, Any], current: Manifest | None
                 ) -> list[str]:
    """Why the trained adapter must not be published (empty: publish). Classify adapters
    are judged by eval accuracy, instruct and extract ones by eval loss, against the thresholds and
    the current version of the same name."""
    if not (args.gate or args.min_eval_accuracy is not None):
        return []
    reasons = []
    acc, loss = metrics.get("eval_accuracy"), metrics.get("eval_loss")
    if args.min_eval_accuracy is not None and (acc is None or acc < args.min_eval_accuracy):
        reasons.append(f"eval accuracy {acc} is under --min-eval-accuracy {args.min_eval_accuracy}")
    old = current.metrics if current else {}
    if acc is not None and old.get("eval_accuracy") is not None \
            and acc < old["eval_accuracy"] - args.gate_max_drop:
        reasons.append(f"eval accuracy {acc:.3f} fell below version {current.version}'s "
                       f"{old['eval_accuracy']:.3f} by more than {args.gate_max_drop}")
    if args.task in ("instruct", "extract") and loss is not None and old.get("eval_loss") is not None \
            and loss > old["eval_loss"] + args.gate_max_drop:
        reasons.append(f"eval loss {loss:.4f} rose above version {current.version}'s "
                       f"{old['eval_loss']:.4f} by more than {args.gate_max_drop}")
    return reasons


def _forget_run(name: str, settings: Settings) -> None:
    """The published adapter holds the result: drop the run's checkpoints, so the same
    command later trains a new version instead of resuming a finished run."""
    from llama_rag.location import shared_root

    try:
        shared_root(_storage(settings)).delete_dir(name)
    except OSError:
        pass


def run_from_cli(config_path: Path | None, input_: tuple[str, ...], eval_input: tuple[str, ...],
                 **kwargs: Any) -> None:
    """Fine-tune for a task: a LoRA adapter (Ray Train) or an embedding head, published
    to the adapter registry (re-run the same command to resume from its checkpoint)."""
    settings = load_settings(config_path)
    from llama_rag.model_files import apply_offline_policy

    apply_offline_policy(settings.models)
    args = FinetuneArgs(input=list(input_), eval_input=list(eval_input), **kwargs)
    out = stdout_for_json() if args.json_output else None  # Ray's workers print on fd 1
    summary = run(args, settings, echo=lambda m: click.echo(m, err=args.json_output))
    if args.json_output:
        click.echo(summary.model_dump_json(indent=2), file=out)
        return
    for key, value in summary.model_dump().items():
        if value not in (None, {}, []):
            click.echo(f"{key}: {value}")


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.finetune`: the job's own flags (those of `llama-rag finetune`),
    errors mapped as the CLI maps them (llama_rag.commands)."""
    from llama_rag.commands import job_entry_point

    job_entry_point("finetune", options, run_from_cli, argv)


if __name__ == "__main__":
    main()

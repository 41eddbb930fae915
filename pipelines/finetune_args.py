"""The fine-tuning job's arguments: one model and one set of flags, shared by
`python -m pipelines.finetune` (for `ray job submit`) and `llama-rag finetune`.

Light on purpose (click and pydantic only): `llama-rag --help` imports it. The
job owns its flags; the CLI (cli/jobs.py) borrows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
from pydantic import BaseModel

from llama_rag.prompts import DEFAULT_INSTRUCTIONS

LLAMA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


EPOCHS_JUDGED = 4.0
EPOCHS_UNJUDGED = 2.0


class FinetuneArgs(BaseModel):
    input: list[str]
    name: str
    method: Literal["lora", "embedding-head", "auto", "llm-yes-no"] = "lora"
    budget_minutes: float = 20.0
    class_weight: Literal["none", "balanced"] = "none"  # classify: a label's weight in the loss
    multi_label: bool = False
    label_separator: str = ";"
    task: Literal["classify", "instruct", "extract"] = "classify"
    schema_ref: str | None = None  # extract: the output's JSON Schema (file or module:Model)
    text_column: str | None = None
    label_column: str | None = None
    labels: str | None = None
    labels_file: Path | None = None
    instructions: str = DEFAULT_INSTRUCTIONS
    prompt_column: str | None = None
    response_column: str | None = None
    eval_fraction: float = 0.1
    eval_input: list[str] = []
    epochs: float | None = None  # LoRA: None is lora_epochs()'s default
    early_stopping: bool = True  # with held-out rows: stop when eval loss rises, keep the best epoch
    max_steps: int | None = None
    learning_rate: float = 3e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    target_modules: str = LLAMA_TARGETS
    batch_size: int = 8
    workers: int = 1
    cpus_per_worker: int = 2
    gpus_per_worker: float = 0
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = "PACK"
    checkpoint_every: int = 20
    max_text_tokens: int = 256
    seed: int = 0
    gate: bool = False
    min_eval_accuracy: float | None = None
    gate_max_drop: float = 0.02
    json_output: bool = False

    def judged_by_epoch(self) -> bool:
        """LoRA evaluates held-out rows after each epoch and keeps the best one."""
        return self.early_stopping and not self.max_steps and bool(
            self.eval_input or self.eval_fraction > 0)

    def lora_epochs(self) -> float:
        """``--epochs``, or by default a ceiling of ``EPOCHS_JUDGED`` where held-out rows
        choose the epoch, and ``EPOCHS_UNJUDGED`` where nothing would stop an overfit."""
        if self.epochs is not None:
            return self.epochs
        return EPOCHS_JUDGED if self.judged_by_epoch() else EPOCHS_UNJUDGED


def _default(field: str):
    """A flag's default is the model's: one place for each."""
    return FinetuneArgs.model_fields[field].default


def options(fn):
    """The job's flags, shared by `python -m pipelines.finetune` and `llama-rag finetune`."""
    flags = [
        click.option("--input", "input_", multiple=True, required=True,
                     help="csv/jsonl/parquet file, folder or glob (repeatable)."),
        click.option("--name", required=True, help="Adapter name (a plain name; re-use to resume)."),
        click.option("--method", type=click.Choice(["lora", "embedding-head", "auto", "llm-yes-no"]),
                     default=_default("method"), show_default=True,
                     help="lora: adapt the LLM (Ray Train); embedding-head: a linear head on "
                     "the embedder (no LLM at classification time); auto (classify): train "
                     "the head, and LoRA and the ensemble of both if they fit "
                     "--budget-minutes, and publish the best on the held-out rows; llm-yes-no "
                     "(--multi-label): the LLM asked of each label, a bar per label chosen on "
                     "the held-out rows (no weights trained)."),
        click.option("--budget-minutes", type=click.FloatRange(0), default=_default("budget_minutes"),
                     show_default=True, help="--method auto: LoRA is trained only if its "
                     "estimated training time fits (on GPUs it is always tried)."),
        click.option("--class-weight", type=click.Choice(["none", "balanced"]),
                     default=_default("class_weight"), show_default=True,
                     help="classify (single label): balanced weighs each row's loss by "
                     "rows / (labels x rows of its label), as scikit-learn's "
                     "class_weight='balanced', for the head and LoRA; auto then picks on "
                     "held-out macro-F1 instead of accuracy. For labeled rows whose labels "
                     "are skewed when every label matters."),
        click.option("--task", type=click.Choice(["classify", "instruct", "extract"]),
                     default=_default("task"), show_default=True,
                     help="extract: text in, the gold JSON object of --label-column out, "
                     "for the extraction job's prompt and --schema."),
        click.option("--schema", "schema_ref", metavar="FILE|MODULE:MODEL",
                     help="extract: the objects' JSON Schema (as the extract job takes it)."),
        click.option("--multi-label", is_flag=True,
                     help="classify: a row may have several labels (the label column lists "
                     "them, split by --label-separator); a one-vs-rest embedding head, or "
                     "the LLM's yes/no per label (--method llm-yes-no), with a threshold per "
                     "label; auto keeps the better on the held-out rows."),
        click.option("--label-separator", default=_default("label_separator"), show_default=True,
                     help="--multi-label: what separates a row's labels in the label column."),
        click.option("--text-column", help="classify, extract: column holding the text."),
        click.option("--label-column", help="classify: column holding the true label; "
                     "extract: the true object, as JSON."),
        click.option("--labels", help="classify: comma-separated labels."),
        click.option("--labels-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="classify: YAML mapping label: description (as the classify job)."),
        click.option("--instructions", default=_default("instructions"), show_default=True,
                     help="classify: task instructions (as the classify job); extract: the "
                     "extract job's default unless given."),
        click.option("--prompt-column", help="instruct: column holding the prompt."),
        click.option("--response-column", help="instruct: column holding the response."),
        click.option("--eval-fraction", type=click.FloatRange(0, 0.5), default=_default("eval_fraction"),
                     show_default=True, help="Rows held out for evaluation (stable split)."),
        click.option("--eval-input", multiple=True, help="Evaluation rows instead of a split."),
        click.option("--epochs", type=click.FloatRange(0, min_open=True),
                     help="LoRA: passes over the rows (with --early-stopping, the most) "
                     "[default: 4 with held-out rows to stop early by, else 2]"),
        click.option("--early-stopping/--no-early-stopping", default=_default("early_stopping"),
                     show_default=True, help="LoRA with held-out rows: evaluate after each "
                     "epoch, stop when the eval loss rises, publish the best epoch's weights."),
        click.option("--max-steps", type=click.IntRange(1), help="Stop after N optimizer steps."),
        click.option("--learning-rate", type=click.FloatRange(0, min_open=True),
                     default=_default("learning_rate"), show_default=True),
        click.option("--lora-rank", type=click.IntRange(1), default=_default("lora_rank"),
                     show_default=True, help="One of the ranks vLLM serves: 8, 16, 32, 64, ..."),
        click.option("--lora-alpha", type=click.IntRange(1), default=_default("lora_alpha"),
                     show_default=True),
        click.option("--target-modules", default=_default("target_modules"), show_default=True,
                     help="Comma-separated module names LoRA adapts."),
        click.option("--batch-size", type=click.IntRange(1), default=_default("batch_size"),
                     show_default=True, help="Rows per step on each worker."),
        click.option("--workers", type=click.IntRange(1), default=_default("workers"),
                     show_default=True, help="Data-parallel Ray Train workers."),
        click.option("--cpus-per-worker", type=click.IntRange(1), default=_default("cpus_per_worker"),
                     show_default=True, help="CPUs (and torch threads) per worker."),
        click.option("--gpus-per-worker", type=click.FloatRange(0), default=_default("gpus_per_worker"),
                     show_default=True, help="GPUs per worker (0: train on the CPU)."),
        click.option("--placement-strategy", default=_default("placement_strategy"),
                     type=click.Choice(["PACK", "SPREAD", "STRICT_SPREAD"]), show_default=True,
                     help="Where the workers go: PACK fills a node first; STRICT_SPREAD puts "
                     "each on its own node (fails if there are fewer nodes than workers)."),
        click.option("--checkpoint-every", type=click.IntRange(1), default=_default("checkpoint_every"),
                     show_default=True, help="Steps between checkpoints."),
        click.option("--max-text-tokens", type=click.IntRange(16), default=_default("max_text_tokens"),
                     show_default=True, help="Longer texts are truncated (as in the classify job)."),
        click.option("--seed", type=int, default=_default("seed"), show_default=True),
        click.option("--gate", is_flag=True,
                     help="Publish only if the eval figures do not fall below the current "
                     "version's by more than --gate-max-drop (classify: eval accuracy; "
                     "instruct: eval loss); else exit 5 and CURRENT stays."),
        click.option("--min-eval-accuracy", type=click.FloatRange(0, 1),
                     help="classify: publish only at this eval accuracy or above (implies --gate)."),
        click.option("--gate-max-drop", type=click.FloatRange(0), default=_default("gate_max_drop"),
                     show_default=True, help="With --gate: the allowed fall from the current version."),
        click.option("--json", "json_output", is_flag=True, help="Print the summary as JSON."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     envvar="LLAMA_RAG_CONFIG", help="YAML settings file."),
    ]
    for flag in reversed(flags):
        fn = flag(fn)
    return fn

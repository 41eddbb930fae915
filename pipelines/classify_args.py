"""The classification job's arguments: one model and one set of flags, shared by
`python -m pipelines.classify` (for `ray job submit`) and `llama-rag classify`.

Light on purpose (click and pydantic only): `llama-rag --help` imports it. The
job owns its flags; the CLI (cli/jobs.py) borrows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from llama_rag.prompts import DEFAULT_INSTRUCTIONS, PromptSpec
from pipelines.row_args import RowJobArgs, apply, row_flags

Mode = Literal["choice", "generate"]


class ClassifyArgs(RowJobArgs):
    labels: str | None = None
    labels_file: Path | None = None
    instructions: str = DEFAULT_INSTRUCTIONS
    examples: Path | None = None
    examples_k: int | None = None  # per row, the k nearest --examples (kNN over the embedder)
    adapter: str | None = None  # a published adapter: LoRA on the LLM, or an embedding head
    mode: Mode = "choice"
    context_index: str | None = None  # a folder or a filesystem URI (s3://, file://, ...)
    context_groups: str | None = None  # the access groups the context may come from
    max_text_tokens: int = PromptSpec.model_fields["max_text_tokens"].default
    calibrate: bool = PromptSpec.model_fields["calibrate"].default
    train: str | None = None  # labeled rows: train with `finetune --method auto` first
    label_column: str | None = None  # --train's label column (default: --gold-column)
    budget_minutes: float = 20.0
    class_weight: Literal["none", "balanced"] = "none"  # --train: as finetune's
    multi_label: bool = False  # rows may have several labels (alone: the LLM's yes/no)
    label_separator: str = ";"


def _default(field: str):
    """A flag's default is the model's: one place for each."""
    return ClassifyArgs.model_fields[field].default


def options(fn):
    """The job's flags, shared by `python -m pipelines.classify` and `llama-rag classify`."""
    flags = row_flags(_default, "Column with true labels: adds accuracy and more.") + [
        click.option("--labels", help="Comma-separated labels, e.g. sports,politics,tech."),
        click.option("--labels-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="YAML mapping label: description."),
        click.option("--instructions", default=_default("instructions"), show_default=True,
                     help="Task instructions placed before the labels."),
        click.option("--examples", type=click.Path(dir_okay=False, path_type=Path),
                     help="Few-shot JSONL of {text, label}."),
        click.option("--examples-k", type=click.IntRange(1),
                     help="Per row, the K --examples nearest to it by embedding (kNN) instead "
                     "of all of them."),
        click.option("--adapter", metavar="NAME",
                     help="A published adapter (llama-rag adapters list): a LoRA adapter runs "
                     "the LLM with it, an embedding head labels without the LLM."),
        click.option("--mode", type=click.Choice(["choice", "generate"]), default=_default("mode"),
                     show_default=True, help="choice: always a label, with confidence."),
        click.option("--context-index", metavar="DIR|URI",
                     help="Index to retrieve context from for each row (RAG classification); "
                     "a folder or a URI such as s3://bucket/index, like index.dir."),
        click.option("--context-groups", metavar="G1,G2",
                     help="Only documents of these access groups (and public ones) as "
                     "context; default: every document (docs/security.md)."),
        click.option("--max-text-tokens", type=click.IntRange(16), default=_default("max_text_tokens"),
                     show_default=True,
                     help="Longer texts are truncated and flagged."),
        click.option("--calibrate/--no-calibrate", default=_default("calibrate"), show_default=True,
                     help="choice mode: divide out the model's label prior (see classify_llm)."),
        click.option("--train", metavar="FILE",
                     help="Labeled rows (csv/jsonl/parquet, file, folder or glob): train the "
                     "method that labels them best (finetune --method auto) and label the input "
                     "with it; a re-run of the same command reuses it."),
        click.option("--label-column", help="--train: the labeled rows' label column "
                     "(default: --gold-column)."),
        click.option("--budget-minutes", type=click.FloatRange(0), default=_default("budget_minutes"),
                     show_default=True, help="--train: LoRA is a candidate only if its "
                     "estimated training time fits."),
        click.option("--class-weight", type=click.Choice(["none", "balanced"]),
                     default=_default("class_weight"), show_default=True,
                     help="--train: weigh each label as if the labeled rows were balanced, "
                     "and pick the method on held-out macro-F1 (finetune's --class-weight)."),
        click.option("--multi-label", is_flag=True, help="Each output row gets every label "
                     "that applies (joined by --label-separator). Alone: the LLM is asked of "
                     "each label, yes or no (calibrated, bar 0.5). With --train: the label "
                     "column lists each row's labels, and the better of a one-vs-rest "
                     "embedding head and the LLM's yes/no, each with bars chosen on held-out "
                     "rows, labels the input."),
        click.option("--label-separator", default=_default("label_separator"), show_default=True,
                     help="--multi-label: what joins (and in --train's rows, separates) a row's labels."),
    ]
    return apply(fn, flags)

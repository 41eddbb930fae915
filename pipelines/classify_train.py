"""`classify --train FILE`: label the input with the method that wins on the user's own
labeled rows, in one command.

The job first runs `finetune --method auto` on the labeled rows (pipelines.method_auto:
the embedding head, LoRA when it fits ``--budget-minutes``, their ensemble; the best on
a held-out fifth of the rows), publishes the winner as an adapter named after the
labeled data, and then labels the input with it. Re-running the same command to
resume an interrupted job finds that adapter and does not train again; changed
labeled rows or labels train a new one.
"""

from __future__ import annotations

from typing import Any, Callable

from llama_rag.config import Settings
from llama_rag.errors import InvalidInputError
from pipelines import classify_io
from pipelines.classify_args import ClassifyArgs

EVAL_FRACTION = 0.2  # the held-out share auto picks on (a tenth is a few rows per label)


def adapter_name(args: ClassifyArgs, label_column: str) -> str:
    """The adapter's name: a hash of what decides it (the labeled files, columns, labels,
    instructions and budget), so the same command finds it again."""
    files = classify_io.list_inputs(args.train)
    decided = {"train": classify_io.fingerprint(files), "columns": [args.text_column, label_column],
               "labels": args.labels, "labels_file": str(args.labels_file or ""),
               "instructions": args.instructions, "budget": args.budget_minutes,
               "max_text_tokens": args.max_text_tokens,
               "multi_label": args.label_separator if args.multi_label else None,
               **({"class_weight": args.class_weight} if args.class_weight != "none" else {})}
    return f"classify-{classify_io.short_hash(decided)[:12]}"


def train_for(args: ClassifyArgs, settings: Settings, echo: Callable[[str], None]
              ) -> tuple[str, dict[str, Any] | None]:
    """(the adapter to label with, the training summary; None when an earlier run of the
    same command trained it)."""
    from llama_rag.adapters import AdapterStore
    from pipelines.finetune import run
    from pipelines.finetune_args import FinetuneArgs

    if args.adapter:
        raise InvalidInputError("--train trains the adapter the job labels with: leave "
                                "--adapter out", param="train")
    label_column = args.label_column or args.gold_column
    if not label_column:
        raise InvalidInputError("--train needs the labeled rows' label column: give "
                                "--label-column (or --gold-column, if it is the same name)",
                                param="label-column")
    name = adapter_name(args, label_column)
    store = AdapterStore.of(settings.adapters)
    if store.current(name):
        echo(f"labeling with adapter {name}, trained on {args.train} by an earlier run")
        return name, None
    summary = run(FinetuneArgs(
        input=[args.train], name=name, method="auto", task="classify",
        text_column=args.text_column, label_column=label_column, labels=args.labels,
        labels_file=args.labels_file, instructions=args.instructions,
        max_text_tokens=args.max_text_tokens, eval_fraction=EVAL_FRACTION,
        budget_minutes=args.budget_minutes, class_weight=args.class_weight,
        multi_label=args.multi_label,
        label_separator=args.label_separator), settings, echo)
    return name, summary.model_dump(include={"name", "version", "method", "chosen",
                                             "chosen_because", "eval_accuracy", "train_rows",
                                             "eval_rows", "seconds", "candidates",
                                             "eval_micro_f1", "eval_macro_f1"})

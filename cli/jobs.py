"""`llama-rag classify`, `extract`, `finetune` and `tune`: the batch jobs, with the jobs' own flags."""

from __future__ import annotations

from typing import Any

import click

from pipelines.classify_args import options as _classify_options
from pipelines.extract_args import options as _extract_options
from pipelines.finetune_args import options as _finetune_options
from pipelines.tune_args import options as _tune_options


@click.command(context_settings={"max_content_width": 100})
@_classify_options
def classify(**kwargs: Any) -> None:
    """Label every row of csv/jsonl/parquet files with the LLM (resumable; see pipelines.classify).

    Runs the same Ray Data job as `ray job submit -- python -m pipelines.classify`.
    """
    from pipelines.classify import run_from_cli

    run_from_cli(**kwargs)


@click.command(context_settings={"max_content_width": 100})
@_extract_options
def extract(**kwargs: Any) -> None:
    """Extract one JSON object per row of csv/jsonl/parquet files, valid against a JSON
    Schema, with the LLM under guided decoding (resumable; see pipelines.extract).

    Runs the same Ray Data job as `ray job submit -- python -m pipelines.extract`.
    """
    from pipelines.extract import run_from_cli

    run_from_cli(**kwargs)


@click.command(context_settings={"max_content_width": 100})
@_finetune_options
def finetune(**kwargs: Any) -> None:
    """Fine-tune for a task: a LoRA adapter (Ray Train) or an embedding head, published
    to the adapter registry (adapters.dir; see pipelines.finetune).

    Runs the same job as `ray job submit -- python -m pipelines.finetune`; re-run the
    same command to resume from the last checkpoint.
    """
    from pipelines.finetune import run_from_cli

    run_from_cli(**kwargs)


@click.command(context_settings={"max_content_width": 100})
@_tune_options
def tune(**kwargs: Any) -> None:
    """Tune the answer engine on an index's corpus: a passage scorer (cross-encoder)
    trained on pairs from the documents' own FAQ entries, titles and headings, published
    to the adapter registry only if it beats the untuned engine on held-out documents.

    Runs the same job as `ray job submit -- python -m pipelines.tune`; serve the result
    with `--passage-scorer NAME` (qa.passage_scorer).
    """
    from pipelines.tune import run_from_cli

    run_from_cli(**kwargs)

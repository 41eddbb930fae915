"""The flags every row job shares (classification, extraction): where the rows are,
which columns matter, where the output goes and how many engines run.

Light on purpose (click and pydantic only): `llama-rag --help` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click
from pydantic import BaseModel


class RowJobArgs(BaseModel):
    input: str
    text_column: str
    output: Path
    id_column: str | None = None
    gold_column: str | None = None
    batch_size: int = 64
    concurrency: int = 1
    max_rows: int | None = None
    via_serve: str | None = None
    output_format: str = "parquet"


def row_flags(default: Callable[[str], object], gold_help: str) -> list:
    """The shared flags, each default the job model's own (``default(field)``)."""
    return [
        click.option("--input", "input_", required=True, help="csv/jsonl/parquet file, folder or glob."),
        click.option("--text-column", required=True, help="Column holding the text."),
        click.option("--id-column", help="Column with row ids (default: <file>:<row>)."),
        click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Output folder (re-use it to resume)."),
        click.option("--batch-size", type=click.IntRange(1), default=default("batch_size"),
                     show_default=True),
        click.option("--concurrency", type=click.IntRange(1), default=default("concurrency"),
                     show_default=True,
                     help="LLM actors (vLLM engines, or HTTP workers with --via-serve)."),
        click.option("--max-rows", type=click.IntRange(0), help="Only the first N input rows."),
        click.option("--gold-column", help=gold_help),
        click.option("--via-serve", help="URL of a running `llama-rag serve` to use instead."),
        click.option("--format", "output_format", type=click.Choice(["parquet", "jsonl"]),
                     default=default("output_format"), show_default=True,
                     help="Format of the result parts."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     envvar="LLAMA_RAG_CONFIG", help="YAML settings file."),
    ]


def apply(fn, flags: list):
    """``fn`` with ``flags`` as its click options, in the order given."""
    for flag in reversed(flags):
        fn = flag(fn)
    return fn

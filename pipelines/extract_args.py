"""The extraction job's arguments: one model and one set of flags, shared by
`python -m pipelines.extract` (for `ray job submit`) and `llama-rag extract`.

Light on purpose (click and pydantic only): `llama-rag --help` imports it.
"""

from __future__ import annotations

import click

from llama_rag.prompts import DEFAULT_EXTRACT_INSTRUCTIONS, ExtractSpec
from pipelines.row_args import RowJobArgs, apply, row_flags


class ExtractArgs(RowJobArgs):
    schema_ref: str | None = None  # a JSON Schema file or package.module:Model
    instructions: str = DEFAULT_EXTRACT_INSTRUCTIONS
    adapter: str | None = None  # a LoRA adapter trained with `finetune --task extract`
    max_text_tokens: int = ExtractSpec.model_fields["max_text_tokens"].default
    max_output_tokens: int = ExtractSpec.model_fields["max_output_tokens"].default


def _default(field: str):
    return ExtractArgs.model_fields[field].default


def options(fn):
    """The job's flags, shared by `python -m pipelines.extract` and `llama-rag extract`."""
    flags = row_flags(_default, "Column with the true object (JSON): adds field-level "
                      "accuracy.") + [
        click.option("--schema", "schema_ref", metavar="FILE|MODULE:MODEL",
                     help="The output's JSON Schema: a .json file, or a pydantic model as "
                     "package.module:Model (required unless --adapter brings its own)."),
        click.option("--instructions", default=_default("instructions"), show_default=True,
                     help="Task instructions placed before the schema."),
        click.option("--adapter", metavar="NAME",
                     help="A LoRA adapter trained with `llama-rag finetune --task extract` "
                     "(it brings the schema and prompt it was trained on)."),
        click.option("--max-text-tokens", type=click.IntRange(16),
                     default=_default("max_text_tokens"), show_default=True,
                     help="Longer texts are truncated and flagged."),
        click.option("--max-output-tokens", type=click.IntRange(8),
                     default=_default("max_output_tokens"), show_default=True,
                     help="An object cut off at this length fails and goes to errors.jsonl."),
    ]
    return apply(fn, flags)

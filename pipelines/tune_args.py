"""The tuning job's arguments: one model and one set of flags, shared by
`python -m pipelines.tune` (for `ray job submit`) and `llama-rag tune`.

Light on purpose (click and pydantic only): `llama-rag --help` imports it.
"""

from __future__ import annotations

import click
from pydantic import BaseModel

from llama_rag.commands import collection_option, config_option


class TuneArgs(BaseModel):
    index_dir: str | None = None
    collection: str | None = None
    name: str = "answers"
    max_pairs: int = 1200
    negatives: int = 3
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 5e-5
    held_out: float = 0.2
    max_held_out: int = 150
    min_gain: float = 0.02
    cpus: int = 2
    seed: int = 0
    json_output: bool = False


def _default(field: str):
    return TuneArgs.model_fields[field].default


def options(fn):
    """The job's flags, shared by `python -m pipelines.tune` and `llama-rag tune`."""
    flags = [
        click.option("--index-dir", help="The index to tune on (default: index.dir)."),
        collection_option,
        click.option("--name", default=_default("name"), show_default=True,
                     help="Name of the passage scorer in the adapter registry (serve it with "
                     "qa.passage_scorer)."),
        click.option("--max-pairs", type=click.IntRange(10), default=_default("max_pairs"),
                     show_default=True, help="Training pairs derived from the corpus, at most."),
        click.option("--negatives", type=click.IntRange(1, 7), default=_default("negatives"),
                     show_default=True, help="Passages that do not answer, per pair."),
        click.option("--epochs", type=click.IntRange(1), default=_default("epochs"),
                     show_default=True),
        click.option("--batch-size", type=click.IntRange(1), default=_default("batch_size"),
                     show_default=True),
        click.option("--learning-rate", type=click.FloatRange(0, min_open=True),
                     default=_default("learning_rate"), show_default=True),
        click.option("--held-out", type=click.FloatRange(0.05, 0.5), default=_default("held_out"),
                     show_default=True, help="Share of documents whose pairs the gate "
                     "measures on (never trained on)."),
        click.option("--max-held-out", type=click.IntRange(5), default=_default("max_held_out"),
                     show_default=True, help="Held-out questions the gate asks, at most."),
        click.option("--min-gain", type=click.FloatRange(-1, 1), default=_default("min_gain"),
                     show_default=True, help="Key-fact coverage the tuned engine must add "
                     "to the untuned one's on the held-out questions (it must also be higher)."),
        click.option("--cpus", type=click.IntRange(1), default=_default("cpus"),
                     show_default=True, help="CPUs (and torch threads) of the training task."),
        click.option("--seed", type=int, default=_default("seed"), show_default=True),
        click.option("--json", "json_output", is_flag=True, help="Print the summary as JSON."),
        config_option,
    ]
    for flag in reversed(flags):
        fn = flag(fn)
    return fn


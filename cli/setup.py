"""`llama-rag setup` and `llama-rag config`: the models, the effective settings."""

from __future__ import annotations

from pathlib import Path

import click

from llama_rag.commands import config_option, settings_from


@click.command()
@config_option
def setup(config_path: Path | None) -> None:
    """Prepare the bundled models offline into $LLAMA_RAG_HOME (idempotent)."""
    from indexing.embedder import resolve_embedder
    from llama_rag.model_files import apply_offline_policy, prepare_llm

    settings = settings_from(config_path)
    apply_offline_policy(settings.models)
    click.echo(f"embedder: {resolve_embedder(settings).path}")
    click.echo(f"llm:      {prepare_llm(settings)}")


@click.command("config")
@config_option
def show_config(config_path: Path | None) -> None:
    """Print the effective configuration (defaults < file < LLAMA_RAG_* env)."""
    from llama_rag.config import dump_settings

    click.echo(dump_settings(settings_from(config_path)), nl=False)

"""`llama-rag adapters list|show`: the adapter registry (adapters.dir)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from llama_rag.commands import config_option, settings_from


@click.group()
def adapters() -> None:
    """Fine-tuned adapters in the registry (adapters.dir)."""


@adapters.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def adapters_list(config_path: Path | None, as_json: bool) -> None:
    """Each adapter's current version, method, base model and eval accuracy."""
    from llama_rag.adapters import AdapterStore

    settings = settings_from(config_path)
    store = AdapterStore.of(settings.adapters)
    manifests = [store.manifest(n) for n in store.names()]
    if as_json:
        click.echo(json.dumps([m.model_dump(exclude={"prompt", "data", "hyperparameters"})
                               for m in manifests], indent=2))
        return
    if not manifests:
        click.echo(f"no adapters in {store}")
    for m in manifests:
        acc = m.metrics.get("eval_accuracy")
        click.echo(f"{m.name}\t{m.version}\t{m.method}\t{m.task}\tbase={m.base_model.name}"
                   + (f"\teval_accuracy={acc}" if acc is not None else ""))


@adapters.command("show")
@click.argument("name")
@click.option("--version", help="A version id (default: the current one).")
@config_option
def adapters_show(name: str, version: str | None, config_path: Path | None) -> None:
    """One adapter version's manifest, and the versions published."""
    from llama_rag.adapters import AdapterStore

    settings = settings_from(config_path)
    store = AdapterStore.of(settings.adapters)
    manifest = store.manifest(name, version)
    click.echo(json.dumps({**manifest.model_dump(), "versions": store.versions(name),
                           "current": store.current(name)}, indent=2))

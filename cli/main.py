"""llama-rag: index your documents, search them, serve LLaMA answers over them.

\b
Quick start:
  llama-rag setup                                   # prepare the bundled models (offline)
  llama-rag index ./docs --index-dir indexes/docs   # Ray Data ingestion into FAISS
  llama-rag search "how do I read a zip archive" --index-dir indexes/docs

Each command imports its heavy modules inside its function, so `--help` is instant.
"""

from __future__ import annotations

import sys

import click

from cli import adapters, ask, audit, evaluate, index, jobs, serve, setup
from llama_rag.commands import MappedGroup


@click.group(cls=MappedGroup, help=__doc__)
@click.version_option(package_name="llama-rag")
def main() -> None:
    pass


for command in (setup.setup, setup.show_config, index.index, index.search, serve.serve,
                jobs.classify, jobs.extract, jobs.finetune, jobs.tune, adapters.adapters, ask.ask, ask.chat,
                evaluate.evaluate, audit.audit):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`llama-rag index` (the ingest job, pipelines.ingest) and `llama-rag search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from llama_rag.commands import (collection_name, config_option, filter_option, metadata_filters,
                                settings_from)
from llama_rag.config import RETRIEVAL_MODES as MODES
from llama_rag.config import groups_flag
from pipelines.ingest_args import options as ingest_options


@click.command(context_settings={"max_content_width": 100})
@ingest_options
def index(**kwargs: Any) -> None:
    """Index files and folders incrementally: txt, md, html, pdf, jsonl, docx, pptx,
    xlsx, ods, epub, eml, and scans (png, jpg, tiff, image-only PDF pages) by OCR.

    Runs the same job as `ray job submit -- python -m pipelines.ingest`.
    """
    from pipelines.ingest import run_from_cli

    run_from_cli(**kwargs)


@click.command()
@click.argument("query")
@click.option("--index-dir", metavar="DIR|URI",
              envvar="LLAMA_RAG_INDEX__DIR", help="Index directory to search.")
@click.option("-k", "k", type=click.IntRange(min=1, max=100), default=5, show_default=True,
              help="Number of hits.")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode (default: retrieval.mode).")
@click.option("--collection", callback=lambda c, p, v: collection_name(v), help="A named collection.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON list.")
@click.option("--groups", metavar="G1,G2", help="Search as a reader of these access groups "
              "(and public documents); default: every document (docs/security.md).")
@filter_option
@config_option
def search(query: str, index_dir: str | None, k: int, mode: str | None, collection: str | None,
           as_json: bool, groups: str | None, filters: tuple[str, ...],
           config_path: Path | None) -> None:
    """Search a published index from the command line."""
    settings = settings_from(config_path, **{"index.dir": index_dir})
    if not query.strip():
        raise click.BadParameter("must not be empty", param_hint="QUERY")
    metadata = metadata_filters(filters)
    from llama_rag.protocol import Access, Filters, SearchRequest

    try:
        access = Access(subject="cli", groups=groups_flag(groups))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--groups") from None
    from llama_rag.model_files import apply_offline_policy
    from indexing.retriever import RetrieverCore

    apply_offline_policy(settings.models)
    found = RetrieverCore(settings).search(
        SearchRequest(query=query, k=k, mode=mode, collection=collection,
                      filters=Filters(metadata=metadata) if metadata else None), access)
    if as_json:
        fields = {"rank", "score", "source", "title", "text", "chunk_id"}
        click.echo(json.dumps([h.model_dump(include=fields) for h in found.hits], indent=2))
        return
    # the rank comes from the mode (fusion in hybrid), the number is always the cosine:
    # say so, or 0.660, 0.610, 0.644 reads as a sorting bug
    click.echo(f"ranked by {found.mode} retrieval; cos = cosine similarity to the query")
    if not found.hits:
        click.echo("no hits (nothing matches, or nothing these groups and filters may see)")
    for h in found.hits:
        snippet = " ".join(h.text.split())[:200]
        click.echo(f"{h.rank}. [cos {h.score:.3f}] {h.source} - {h.title}\n   {snippet}")

"""The ingest job's flags and its summary as printed, shared by `python -m pipelines.ingest`
(for `ray job submit`) and `llama-rag index`.

Light on purpose (click only): `llama-rag --help` imports it; the job itself
(pipelines.ingest: Ray, the embedder) loads only when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from llama_rag.commands import collection_option, config_option


def options(fn):
    """The job's flags, shared by `python -m pipelines.ingest` and `llama-rag index`."""
    flags = [
        click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path)),
        click.option("--index-dir", metavar="DIR|URI", envvar="LLAMA_RAG_INDEX__DIR",
                     help="Index directory to create or update."),
        collection_option,
        click.option("--concurrency", type=click.IntRange(min=1), help="Embedder actors."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Chunks per embedder call."),
        click.option("--num-gpus", type=click.FloatRange(min=0),
                     help="GPUs per embedder actor (embeds with the torch backend)."),
        click.option("--ocr", type=click.Choice(["auto", "off", "force"]),
                     help="OCR (Tesseract) of scans and images: auto reads PDF pages without "
                     "a text layer and image files, force every PDF page, off none "
                     "(default ingest.ocr)."),
        click.option("--ocr-language", metavar="LANGS",
                     help="Tesseract languages, e.g. eng or deu+eng (default ingest.ocr_language)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
        click.option("--progress/--no-progress", default=True,
                     help="Show a progress bar on stderr."),
        click.option("--gate", "gate_qa", type=click.Path(dir_okay=False, path_type=Path),
                     help="Publish only if the new version passes this QA set (JSONL; see "
                     "`llama-rag eval make-set`); otherwise CURRENT stays and the exit code is 5."),
        click.option("--min-hit5", type=click.FloatRange(0, 1),
                     help="With --gate: least retrieval hit@5."),
        click.option("--min-answer-f1", type=click.FloatRange(0, 1),
                     help="With --gate: least extractive answer token-F1 (needs reference "
                     "answers)."),
        click.option("--gate-max-drop", type=click.FloatRange(0, 1), default=0.02,
                     show_default=True,
                     help="With --gate: how far below the current version's hit@5, MRR and "
                     "answer F1 the new one may fall."),
        config_option,
    ]
    for flag in reversed(flags):
        fn = flag(fn)
    return fn


def print_summary(summary) -> None:
    refused = summary.gate is not None and not summary.gate.passed
    what = (f"published version {summary.version}" if summary.published
            else f"the gate refused the new version; version {summary.version} stays current"
            if refused else f"nothing changed; version {summary.version} stays current")
    click.echo(f"{summary.index_dir}: {what}")
    click.echo(f"files: {summary.added} added, {summary.updated} updated, "
               f"{summary.unchanged} unchanged, {summary.deleted} deleted, {summary.failed} failed"
               + (f", {summary.relabeled} relabeled" if summary.relabeled else ""))
    click.echo(f"chunks: {summary.chunks_embedded} embedded ({summary.chunks_per_s} chunks/s), "
               f"{summary.chunks_total} in the index; {summary.seconds} s")
    for err in summary.errors[:20]:
        where = f"{err['source']} page {err['page']}" if "page" in err else err["source"]
        click.echo(f"  {'not read' if 'page' in err else 'failed'}: {where}: {err['error']}")
    if len(summary.errors) > 20:
        click.echo(f"  ... and {len(summary.errors) - 20} more in errors.jsonl")
    if summary.gate:
        g = summary.gate

        def f(x): return "n/a" if x is None else f"{x:.3f}"
        for label, fig in (("new", g.candidate), ("current", g.current)):
            if fig:
                click.echo(f"gate {label}: hit@5 {f(fig.hit_at_5)}  MRR {f(fig.mrr)}  "
                           f"answer F1 {f(fig.answer_f1)}")
        click.echo("gate: passed" if g.passed else "gate: refused")

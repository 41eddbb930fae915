"""`llama-rag eval`: retrieval and answer quality on a QA set; `eval make-set`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.ask import ANSWER_MODES
from llama_rag.commands import collection_name, config_option, settings_from
from llama_rag.config import RETRIEVAL_MODES as MODES


@click.group("eval", invoke_without_command=True)
@click.option("--qa", "qa_file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL of {question, sources: [...], reference?}; empty sources: not "
              "answerable; a reference sentence also scores the answers.")
@click.option("--url", envvar="LLAMA_RAG_URL",
              help="Evaluate a running server (retrieval and answers).")
@click.option("--index-dir", metavar="DIR|URI",
              help="Evaluate a local index (no server, no LLM: answers are extractive).")
@click.option("--modes", default=None,
              help="Compare retrieval modes side by side, e.g. dense,lexical,hybrid "
              "(writes JSON and a PNG chart to --out).")
@click.option("--answer-modes", default=None,
              help="With --url: score these answer modes side by side, e.g. "
              "generate,extractive (JSON and PNG to --out).")
@click.option("--collection", callback=lambda c, p, v: collection_name(v), help="A named collection.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the .json and .png go (no suffix); default "
              "bench/results/retrieval-modes or bench/results/answers.")
@click.option("--retrieval-only", is_flag=True,
              help="With --url: score retrieval alone (no /v1/ask, no LLM time).")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=None,
              help="With --url: answer length per question (default: the server's qa.max_tokens); "
              "a short one scores refusals and citations in a fraction of the time.")
@click.option("--passage-scorer", metavar="NAME",
              help="With --index-dir: answer with this tuned passage scorer (`llama-rag tune`; "
              "default qa.passage_scorer).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_option
@click.pass_context
def evaluate(ctx: click.Context, qa_file: Path | None, url: str | None, index_dir: str | None,
             modes: str | None, answer_modes: str | None, collection: str | None,
             out: Path | None, retrieval_only: bool, max_tokens: int | None,
             passage_scorer: str | None, as_json: bool, config_path: Path | None) -> None:
    """Retrieval hit@1/hit@5/MRR; answers: token-F1, ROUGE-L, citations, support, refusals
    and latency, beside a no-LLM extractive baseline scored in the same run."""
    from qa.evaluation.charts import compare_answers, compare_modes
    from qa.evaluation.report import dumps, evaluate as run_eval, load_qa, report_lines

    if ctx.invoked_subcommand:
        return
    if qa_file is None:
        raise click.UsageError("give --qa QA.jsonl (or a subcommand: make-set)")
    if bool(url) == bool(index_dir):
        raise click.UsageError("give exactly one of --url or --index-dir")
    if answer_modes and not url:
        raise click.UsageError("--answer-modes needs --url (a local index answers extractively)")
    wanted = _eval_modes(modes)
    answer_wanted = _answer_modes(answer_modes)
    items = load_qa(qa_file)
    if url:
        from qa.evaluation.targets import http_target

        searcher, asker = http_target(url, collection, max_tokens,
                                      answers=not (modes or retrieval_only))
    else:
        searcher, asker = _local_target(config_path, index_dir, collection, passage_scorer)
        if not any(i.reference for i in items):
            asker = None  # retrieval only: extractive answers need reference sentences to score
    reports = {}
    for mode in wanted:
        for answer_mode in answer_wanted if not modes else [None]:
            label = answer_mode or mode or ("server default" if url else "extractive")
            with click.progressbar(length=len(items), file=sys.stderr,
                                   label=f"questions ({label or 'default mode'})") as bar:
                reports[label] = run_eval(items, searcher(mode),
                                          asker(answer_mode) if asker else None,
                                          progress=lambda n: bar.update(1))
    if modes:
        table, files = compare_modes(reports, out or Path("bench/results/retrieval-modes"),
                                     title=f"{qa_file.name}: retrieval by mode")
    elif any(r.answers for r in reports.values()) or answer_modes:
        table, files = compare_answers(reports, out or Path("bench/results/answers"),
                                       title=f"{qa_file.name}: answers by mode")
    else:
        files = []
    if as_json:
        click.echo(json.dumps({str(m): r.model_dump() for m, r in reports.items()}, indent=2)
                   if len(reports) > 1 else dumps(next(iter(reports.values()))))
    elif modes:
        click.echo(table)
    else:
        for label, report in reports.items():
            if len(reports) > 1:
                click.echo(f"== answer mode {label}")
            click.echo("\n".join(report_lines(report)))
    if files:
        click.echo(f"wrote {', '.join(str(f) for f in files)}", err=True)


@evaluate.command("make-set")
@click.option("--from", "docs", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder of documents (HTML of any generator, Markdown, text, PDF, docx), "
              "e.g. /usr/share/doc/python3.11/html.")
@click.option("--kind", type=click.Choice(["auto", "sphinx", "any"]), default="auto",
              show_default=True, help="sphinx: API entries and headings of Sphinx HTML; any: "
              "FAQ entries and headings of documents of any kind; auto: sphinx where the "
              "folder has Sphinx API pages.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The QA set to write (JSONL).")
@click.option("--n", type=click.IntRange(min=0), default=None,
              help="Answerable questions to keep (default: all).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Decides the page split and the sample.")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="test",
              show_default=True, help="Pages of this split only: a page is in one split for a "
              "given seed, so tuning on train never sees a test page.")
@click.option("--unanswerable", type=click.IntRange(min=0), default=20, show_default=True,
              help="Off-topic questions to add (empty sources, no reference).")
@click.option("--per-page", type=click.IntRange(min=1), default=3, show_default=True,
              help="Most questions taken from one page.")
@click.option("--followups", type=click.IntRange(min=0), default=0, show_default=True,
              help="Two-turn conversations to add: an API entry, then a sibling by its bare "
              "name (\"And what does write() do?\"), with the earlier question in `turns`.")
def make_set(docs: Path, kind: str, out: Path, n: int | None, seed: int, split: str,
             unanswerable: int, per_page: int, followups: int) -> None:
    """Derive {question, reference, sources, key_facts} items from the documents: Sphinx
    API entries and headings (the first sentence of each <dt id=NAME>'s description), or,
    for any other corpus, its FAQ entries and headings with the text under them."""
    from collections import Counter

    from llama_rag.atomic import write_atomic
    from qa.evaluation.sets import make_set as derive
    from qa.evaluation.sets_any import has_sphinx_entries, make_any_set

    if kind == "any" or (kind == "auto" and docs.is_dir() and not has_sphinx_entries(docs)):
        if followups:
            raise click.UsageError("--followups needs Sphinx API entries (--kind sphinx)")
        items = make_any_set(docs, n, seed, split, unanswerable, per_page)
    else:
        items = derive(docs, n, seed, split, unanswerable, per_page, followups=followups)
    write_atomic(out, "".join(i.model_dump_json(exclude_none=True) + "\n" for i in items))
    kinds = Counter(i.kind.split(":")[0] for i in items)
    click.echo(f"{out}: {len(items)} questions ({', '.join(f'{v} {k}' for k, v in kinds.items())}) "
               f"from {len({s for i in items for s in i.sources})} pages of the {split} split")


def _answer_modes(modes: str | None) -> list[str | None]:
    wanted = [m.strip() for m in modes.split(",")] if modes else [None]
    bad = [m for m in wanted if m is not None and m not in ANSWER_MODES]
    if bad:
        raise click.BadParameter(f"unknown answer mode(s) {', '.join(bad)}; use "
                                 f"{', '.join(ANSWER_MODES)}", param_hint="--answer-modes")
    return wanted


def _eval_modes(modes: str | None) -> list[str | None]:
    wanted = [m.strip() for m in modes.split(",")] if modes else [None]
    bad = [m for m in wanted if m is not None and m not in MODES]
    if bad:
        raise click.BadParameter(f"unknown mode(s) {', '.join(bad)}; use {', '.join(MODES)}",
                                 param_hint="--modes")
    return wanted


def _local_target(config_path: Path | None, index_dir: str | None, collection: str | None,
                  passage_scorer: str | None = None):
    """(mode -> search, answer mode -> ask) on a local index, without a server."""
    from indexing.passage_scorer import load_scorer
    from indexing.retriever import RetrieverCore
    from llama_rag.model_files import apply_offline_policy
    from qa.evaluation.targets import local_target

    flags = {"index.dir": index_dir, "qa.passage_scorer": passage_scorer}
    settings = settings_from(config_path, **flags)
    apply_offline_policy(settings.models)
    if collection:
        from llama_rag.location import collection_dir

        settings = settings_from(config_path, **{**flags, "index.dir": collection_dir(
            settings.index.dir, collection)})
    searcher, ask = local_target(RetrieverCore(settings), settings, load_scorer(settings))
    return searcher, lambda answer_mode: ask

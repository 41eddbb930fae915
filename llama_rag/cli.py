"""llama-rag: index your documents, search them, serve LLaMA answers over them.

\b
Quick start:
  llama-rag setup                                   # prepare the bundled models (offline)
  llama-rag index ./docs --index-dir indexes/docs   # Ray Data ingestion into FAISS
  llama-rag search "how do I read a zip archive" --index-dir indexes/docs

Each command imports its heavy modules inside its function, so `--help` is instant.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from llama_rag.client import DEFAULT_URL
from llama_rag.config import COLLECTION_PATTERN
from llama_rag.config import RETRIEVAL_MODES as MODES
from llama_rag.config import AnswerMode
from typing import get_args
from llama_rag.errors import LlamaRagError
from llama_rag.classify_args import options as _classify_options
from llama_rag.finetune_args import options as _finetune_options

ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)


class _UserError(click.ClickException):
    """A LlamaRagError shown as one line, with the error type's exit code."""

    def __init__(self, error: LlamaRagError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code


class _Group(click.Group):
    """Maps the project's errors to CLI messages in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlamaRagError as exc:
            raise _UserError(exc) from None


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="LLAMA_RAG_CONFIG", help="YAML settings file (env LLAMA_RAG_CONFIG).")


def _collection(name: str | None) -> str | None:
    import re

    if name is not None and not re.match(COLLECTION_PATTERN, name):
        raise click.BadParameter(f"{name!r}: use 1-64 lowercase letters, digits, '-' or '_'",
                                 param_hint="--collection")
    return name


def _settings(config_path: Path | None, **flags: Any):
    from llama_rag.config import load_settings

    return load_settings(config_path, flags)


@click.group(cls=_Group, help=__doc__)
@click.version_option(package_name="llama-rag")
def main() -> None:
    pass


@main.command()
@config_option
def setup(config_path: Path | None) -> None:
    """Prepare the bundled models offline into $LLAMA_RAG_HOME (idempotent)."""
    from indexing.embedder import resolve_embedder
    from llama_rag.model_files import apply_offline_policy, prepare_llm

    settings = _settings(config_path)
    apply_offline_policy(settings.models)
    click.echo(f"embedder: {resolve_embedder(settings).path}")
    click.echo(f"llm:      {prepare_llm(settings)}")


@main.command("config")
@config_option
def show_config(config_path: Path | None) -> None:
    """Print the effective configuration (defaults < file < LLAMA_RAG_* env)."""
    from llama_rag.config import dump_settings

    click.echo(dump_settings(_settings(config_path)), nl=False)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--index-dir", metavar="DIR|URI",
              envvar="LLAMA_RAG_INDEX__DIR", help="Index directory to create or update.")
@click.option("--collection", callback=lambda c, p, v: _collection(v),
              help="A named collection, kept in INDEX_DIR/collections/NAME and served beside "
              "the default one.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Embedder actors.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Chunks per embedder call.")
@click.option("--num-gpus", type=click.FloatRange(min=0),
              help="GPUs per embedder actor (embeds with the torch backend).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.option("--gate", "gate_qa", type=click.Path(dir_okay=False, path_type=Path),
              help="Publish only if the new version passes this QA set (JSONL; see "
              "`llama-rag eval make-set`); otherwise CURRENT stays and the exit code is 5.")
@click.option("--min-hit5", type=click.FloatRange(0, 1), help="With --gate: least retrieval hit@5.")
@click.option("--min-answer-f1", type=click.FloatRange(0, 1),
              help="With --gate: least extractive answer token-F1 (needs reference answers).")
@click.option("--gate-max-drop", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="With --gate: how far below the current version's hit@5, MRR and answer "
              "F1 the new one may fall.")
@config_option
def index(paths: tuple[Path, ...], index_dir: str | None, collection: str | None,
          concurrency: int | None, batch_size: int | None, num_gpus: float | None,
          as_json: bool, progress: bool, gate_qa: Path | None, min_hit5: float | None,
          min_answer_f1: float | None, gate_max_drop: float, config_path: Path | None) -> None:
    """Index files and folders (txt, md, html, pdf, jsonl, docx) incrementally."""
    from indexing.corpus import check_paths
    from llama_rag.location import collection_dir
    from llama_rag.config import Settings

    check_paths(list(paths))  # fail in a second, before Ray and torch load
    if collection:
        base = _settings(config_path, **{"index.dir": index_dir}).index.dir
        index_dir = collection_dir(base, collection)
    settings: Settings = _settings(
        config_path, **{"index.dir": index_dir, "ingest.embed_concurrency": concurrency,
                        "ingest.embed_batch_size": batch_size, "ingest.embed_num_gpus": num_gpus,
                        # GPUs embed with torch (the CPU backends would leave them idle)
                        "models.embed_backend": "torch" if num_gpus else None})
    from pipelines.ingest import run
    from qa.evaluation.gate import GateSpec

    if gate_qa is None and (min_hit5 is not None or min_answer_f1 is not None):
        raise click.UsageError("--min-hit5 and --min-answer-f1 need --gate QA.jsonl")
    gate = GateSpec(qa=gate_qa, min_hit5=min_hit5, min_answer_f1=min_answer_f1,
                    max_drop=gate_max_drop) if gate_qa else None
    out = _stdout_for_json() if as_json else sys.stdout
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        summary = run(list(paths), settings, progress=progress, gate=gate)  # Ray's log lines
    if as_json:  # stdout holds the JSON alone
        click.echo(summary.model_dump_json(indent=2), file=out)
        out.flush()
    else:
        _print_index_summary(summary)
    if summary.gate and not summary.gate.passed:
        from llama_rag.errors import GateRefusedError

        raise GateRefusedError(f"gate refused the new version ({'; '.join(summary.gate.reasons)}); "
                               f"CURRENT stays {summary.version or 'unset'}")


def _stdout_for_json():
    """Where ``--json`` output goes: a copy of the real stdout, with the process's own fd 1
    sent to stderr for good. Ray's driver prints its workers' log lines on stdout from a
    thread, at any time (after the summary, when a lost node's address was refused), so
    redirecting Python's ``sys.stdout`` for the run alone was not enough. Under click's
    test runner (no file descriptor) stdout stays as it is."""
    try:
        fd = sys.stdout.fileno()
        err = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return sys.stdout
    sys.stdout.flush()
    out = os.fdopen(os.dup(fd), "w", encoding="utf-8")
    os.dup2(err, fd)
    return out


def _print_index_summary(summary) -> None:
    refused = summary.gate is not None and not summary.gate.passed
    what = (f"published version {summary.version}" if summary.published
            else f"the gate refused the new version; version {summary.version} stays current"
            if refused else f"nothing changed; version {summary.version} stays current")
    click.echo(f"{summary.index_dir}: {what}")
    click.echo(f"files: {summary.added} added, {summary.updated} updated, "
               f"{summary.unchanged} unchanged, {summary.deleted} deleted, {summary.failed} failed")
    click.echo(f"chunks: {summary.chunks_embedded} embedded ({summary.chunks_per_s} chunks/s), "
               f"{summary.chunks_total} in the index; {summary.seconds} s")
    for err in summary.errors[:20]:
        click.echo(f"  failed: {err['source']}: {err['error']}")
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


@main.command()
@click.argument("query")
@click.option("--index-dir", metavar="DIR|URI",
              envvar="LLAMA_RAG_INDEX__DIR", help="Index directory to search.")
@click.option("-k", "k", type=click.IntRange(min=1, max=100), default=5, show_default=True,
              help="Number of hits.")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode (default: retrieval.mode).")
@click.option("--collection", callback=lambda c, p, v: _collection(v), help="A named collection.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as a JSON list.")
@config_option
def search(query: str, index_dir: str | None, k: int, mode: str | None, collection: str | None,
           as_json: bool, config_path: Path | None) -> None:
    """Search a published index from the command line."""
    settings = _settings(config_path, **{"index.dir": index_dir})
    if not query.strip():
        raise click.BadParameter("must not be empty", param_hint="QUERY")
    from llama_rag.model_files import apply_offline_policy
    from indexing.retriever import RetrieverCore
    from llama_rag.protocol import SearchRequest

    apply_offline_policy(settings.models)
    found = RetrieverCore(settings).search(
        SearchRequest(query=query, k=k, mode=mode, collection=collection))
    if as_json:
        fields = {"rank", "score", "source", "title", "text", "chunk_id"}
        click.echo(json.dumps([h.model_dump(include=fields) for h in found.hits], indent=2))
        return
    # the rank comes from the mode (fusion in hybrid), the number is always the cosine:
    # say so, or 0.660, 0.610, 0.644 reads as a sorting bug
    click.echo(f"ranked by {found.mode} retrieval; cos = cosine similarity to the query")
    for h in found.hits:
        snippet = " ".join(h.text.split())[:200]
        click.echo(f"{h.rank}. [cos {h.score:.3f}] {h.source} - {h.title}\n   {snippet}")


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default 8000).")
@click.option("--index-dir", metavar="DIR|URI",
              envvar="LLAMA_RAG_INDEX__DIR", help="Index the QA routes answer from.")
@config_option
def serve(host: str | None, port: int | None, index_dir: str | None,
          config_path: Path | None) -> None:
    """Deploy the Serve application and wait for Ctrl-C.

    vLLM LLaMA replicas with the OpenAI routes, the retriever, and /v1/ask and
    /v1/search over the index. Joins RAY_ADDRESS when set, else starts a local
    loopback-only Ray.
    """
    settings = _settings(config_path, **{"serve.host": host, "serve.port": port,
                                         "index.dir": index_dir})
    from llama_rag.model_files import apply_offline_policy
    from llama_rag.ray_runtime import ensure_ray

    apply_offline_policy(settings.models)
    ensure_ray()
    from ray import serve as ray_serve

    from services.app import build_app

    ray_serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port},
                    proxy_location=settings.serve.proxy_location)
    ray_serve.run(build_app(settings), name="llama-rag", route_prefix="/")  # waits until healthy
    click.echo(f"serving {settings.llm.model_id} at "
               f"http://{settings.serve.host}:{settings.serve.port}/v1 (Ctrl-C stops)", err=True)
    received = wait_for_stop()
    click.echo(f"{signal.Signals(received).name}: shutting down", err=True)
    deleting = threading.Thread(target=ray_serve.delete, args=("llama-rag",), daemon=True)
    deleting.start()
    deleting.join(SHUTDOWN_S)
    if deleting.is_alive():
        click.echo(f"the app was not deleted within {SHUTDOWN_S} s; exiting anyway", err=True)


SHUTDOWN_S = 60  # how long `llama-rag serve` waits for Serve to delete the app


def wait_for_stop(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Block until SIGINT (Ctrl-C) or SIGTERM (a process manager, `kill`) arrives and return
    it: both mean "stop cleanly" (Ray's driver can swallow a bare KeyboardInterrupt)."""
    stop, got = threading.Event(), []

    def handler(signum: int, _frame) -> None:
        got.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return got[0]


@main.command(context_settings={"max_content_width": 100})
@_classify_options
def classify(**kwargs: Any) -> None:
    """Label every row of csv/jsonl/parquet files with the LLM (resumable; see pipelines.classify).

    Runs the same Ray Data job as `ray job submit -- python -m pipelines.classify`.
    """
    from pipelines.classify import run_from_cli

    run_from_cli(**kwargs)


@main.command(context_settings={"max_content_width": 100})
@_finetune_options
def finetune(**kwargs: Any) -> None:
    """Fine-tune for a task: a LoRA adapter (Ray Train) or an embedding head, published
    to the adapter registry (adapters.dir; see pipelines.finetune).

    Runs the same job as `ray job submit -- python -m pipelines.finetune`; re-run the
    same command to resume from the last checkpoint.
    """
    from pipelines.finetune import run_from_cli

    run_from_cli(**kwargs)


@main.group()
def adapters() -> None:
    """Fine-tuned adapters in the registry (adapters.dir)."""


@adapters.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def adapters_list(config_path: Path | None, as_json: bool) -> None:
    """Each adapter's current version, method, base model and eval accuracy."""
    from llama_rag.adapters import AdapterStore

    settings = _settings(config_path)
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

    settings = _settings(config_path)
    store = AdapterStore.of(settings.adapters)
    manifest = store.manifest(name, version)
    click.echo(json.dumps({**manifest.model_dump(), "versions": store.versions(name),
                           "current": store.current(name)}, indent=2))


url_option = click.option("--url", default=DEFAULT_URL, show_default=True, envvar="LLAMA_RAG_URL",
                          help="Base URL of `llama-rag serve` (env LLAMA_RAG_URL).")


@main.command()
@click.argument("question")
@url_option
@click.option("-k", "k", type=click.IntRange(1, 20), help="Chunks to quote (default qa.k).")
@click.option("--source-prefix", help="Only sources starting with this, e.g. library/.")
@click.option("--stream/--no-stream", default=False, help="Print tokens as they come.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON answer.")
@click.option("--answer-mode", type=click.Choice(ANSWER_MODES),
              help="generate (the LLM writes it) or extractive (the answering sentence, "
              "quoted); default: the server's qa.answer_mode.")
def ask(question: str, url: str, k: int | None, source_prefix: str | None, stream: bool,
        as_json: bool, answer_mode: str | None) -> None:
    """Ask a question; the answer cites the indexed documents. Key: LLAMA_RAG_API_KEY."""
    from llama_rag.client import Client

    body: dict[str, Any] = {"question": question}
    if k:
        body["k"] = k
    if answer_mode:
        body["answer_mode"] = answer_mode
    if source_prefix:
        body["filters"] = {"source_prefix": source_prefix}
    client = Client(url)
    if stream and not as_json:
        _print_citations(_streamed_answer(client, body))
        return
    answer = client.post("/v1/ask", body)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(answer["answer"])
    _print_citations(answer)


def _streamed_answer(client, body: dict[str, Any]) -> dict[str, Any]:
    """Print an answer's tokens as they come; the finished answer (the ``done`` event)."""
    answer: dict[str, Any] = {}
    for event, data in client.events("/v1/ask", body):
        if event == "token":
            click.echo(data["text"], nl=False)
        elif event == "done":
            answer = data
        elif event == "error":
            raise click.ClickException(data["error"]["message"])
    click.echo()
    return answer


@main.command()
@url_option
@click.option("--collection", callback=lambda c, p, v: _collection(v), help="A named collection.")
@click.option("--answer-mode", type=click.Choice(ANSWER_MODES),
              help="generate or extractive (default: the server's qa.answer_mode).")
def chat(url: str, collection: str | None, answer_mode: str | None) -> None:
    """A conversation with your documents in the terminal: answers stream in with their
    sources, follow-ups keep the context. /new starts over; an empty line, /quit or
    Ctrl-D ends. Key: LLAMA_RAG_API_KEY."""
    from llama_rag.client import ApiError, Client

    client, history = Client(url), []
    extra = {k: v for k, v in {"collection": collection, "answer_mode": answer_mode}.items() if v}
    while True:
        try:
            question = click.prompt("you", prompt_suffix="> ", default="",
                                    show_default=False).strip()
        except (EOFError, click.Abort):
            break
        if question in ("", "/quit", "/exit"):
            break
        if question == "/new":
            history = []
            click.echo("(new conversation)")
            continue
        try:
            answer = _streamed_answer(client, {"question": question, "stream": True,
                                               "history": history, **extra})
        except ApiError as exc:
            if exc.http_status in (0, 401, 403):
                raise
            click.echo(f"error: {exc.message}", err=True)  # busy or rate limited: ask again
            continue
        _print_citations(answer)
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer.get("answer", "")}]


def _print_citations(answer: dict[str, Any]) -> None:
    if not answer.get("answerable", True):
        click.echo("(not answerable from the indexed documents)")
    for c in answer.get("citations", []):
        click.echo(f"[{c['n']}] {c['source']} - {c['title']} (score {c['score']:.3f})")


@main.group("eval", invoke_without_command=True)
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
@click.option("--collection", callback=lambda c, p, v: _collection(v), help="A named collection.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the .json and .png go (no suffix); default "
              "bench/results/retrieval-modes or bench/results/answers.")
@click.option("--retrieval-only", is_flag=True,
              help="With --url: score retrieval alone (no /v1/ask, no LLM time).")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=None,
              help="With --url: answer length per question (default: the server's qa.max_tokens); "
              "a short one scores refusals and citations in a fraction of the time.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@config_option
@click.pass_context
def evaluate(ctx: click.Context, qa_file: Path | None, url: str | None, index_dir: str | None,
             modes: str | None, answer_modes: str | None, collection: str | None,
             out: Path | None, retrieval_only: bool, max_tokens: int | None, as_json: bool,
             config_path: Path | None) -> None:
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
        searcher, asker = _local_target(config_path, index_dir, collection)
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
              help="A folder of Sphinx HTML documentation, e.g. /usr/share/doc/python3.11/html.")
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
def make_set(docs: Path, out: Path, n: int | None, seed: int, split: str, unanswerable: int,
             per_page: int, followups: int) -> None:
    """Derive {question, reference, sources} items from Sphinx HTML: API entries (the first
    sentence of each <dt id=NAME>'s description) and headings with an answering paragraph."""
    from collections import Counter

    from llama_rag.atomic import write_atomic
    from qa.evaluation.sets import make_set as derive

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


def _local_target(config_path: Path | None, index_dir: str | None, collection: str | None):
    """(mode -> search, answer mode -> ask) on a local index, without a server."""
    from indexing.retriever import RetrieverCore
    from qa.evaluation.targets import local_target
    from llama_rag.model_files import apply_offline_policy

    settings = _settings(config_path, **{"index.dir": index_dir})
    apply_offline_policy(settings.models)
    if collection:
        from llama_rag.location import collection_dir

        settings = _settings(config_path, **{"index.dir": collection_dir(settings.index.dir,
                                                                         collection)})
    searcher, ask = local_target(RetrieverCore(settings), settings)
    return searcher, lambda answer_mode: ask


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

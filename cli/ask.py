"""`llama-rag ask` and `llama-rag chat`: questions to a running server."""

from __future__ import annotations

import json
from typing import Any, get_args

import click

from llama_rag.client import DEFAULT_URL
from llama_rag.commands import collection_name, filter_option, metadata_filters
from llama_rag.config import AnswerMode

ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)

url_option = click.option("--url", default=DEFAULT_URL, show_default=True, envvar="LLAMA_RAG_URL",
                          help="Base URL of `llama-rag serve` (env LLAMA_RAG_URL).")


@click.command()
@click.argument("question")
@url_option
@click.option("-k", "k", type=click.IntRange(1, 20), help="Chunks to quote (default qa.k).")
@click.option("--source-prefix", help="Only sources starting with this, e.g. library/.")
@filter_option
@click.option("--stream/--no-stream", default=False, help="Print tokens as they come.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON answer.")
@click.option("--answer-mode", type=click.Choice(ANSWER_MODES),
              help="generate (the LLM writes it) or extractive (the answering sentence, "
              "quoted); default: the server's qa.answer_mode.")
def ask(question: str, url: str, k: int | None, source_prefix: str | None,
        filters: tuple[str, ...], stream: bool, as_json: bool, answer_mode: str | None) -> None:
    """Ask a question; the answer cites the indexed documents. Key: LLAMA_RAG_API_KEY."""
    from llama_rag.client import Client

    body: dict[str, Any] = {"question": question}
    if k:
        body["k"] = k
    if answer_mode:
        body["answer_mode"] = answer_mode
    metadata = metadata_filters(filters)
    if source_prefix or metadata:
        body["filters"] = {k: v for k, v in {"source_prefix": source_prefix,
                                             "metadata": metadata}.items() if v}
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


@click.command()
@url_option
@click.option("--collection", callback=lambda c, p, v: collection_name(v), help="A named collection.")
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
        page = f", page {c['page']}" if c.get("page") else ""
        click.echo(f"[{c['n']}] {c['source']}{page} - {c['title']} (score {c['score']:.3f})")

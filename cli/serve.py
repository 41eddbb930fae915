"""`llama-rag serve`: the Serve application in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from llama_rag.commands import config_option, settings_from


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default 8000).")
@click.option("--index-dir", metavar="DIR|URI",
              envvar="LLAMA_RAG_INDEX__DIR", help="Index the QA routes answer from.")
@click.option("--passage-scorer", metavar="NAME",
              help="Choose extractive answers with this tuned passage scorer (`llama-rag "
              "tune`; default qa.passage_scorer).")
@click.option("--documents-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The indexed folder: its files are served at /v1/files/ so the question "
              "page opens a cited PDF at its page (serve.documents_dir).")
@config_option
def serve(host: str | None, port: int | None, index_dir: str | None,
          passage_scorer: str | None, documents_dir: Path | None,
          config_path: Path | None) -> None:
    """Deploy the Serve application and wait for Ctrl-C.

    vLLM LLaMA replicas with the OpenAI routes, the retriever, and /v1/ask and
    /v1/search over the index. Joins RAY_ADDRESS when set, else starts a local
    loopback-only Ray.
    """
    settings = settings_from(config_path, **{"serve.host": host, "serve.port": port,
                                         "index.dir": index_dir,
                                         "qa.passage_scorer": passage_scorer,
                                         "serve.documents_dir": documents_dir})
    from llama_rag.adapters import AdapterStore
    from llama_rag.model_files import apply_offline_policy
    from llama_rag.ray_runtime import ensure_ray

    apply_offline_policy(settings.models)
    if settings.qa.passage_scorer:  # a wrong name fails here, not in a replica
        from indexing.passage_scorer import check_scorer

        check_scorer(AdapterStore.of(settings.adapters).manifest(settings.qa.passage_scorer))
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

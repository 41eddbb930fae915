"""What every command line of the project shares: our errors as exit codes, ``--config``.

Two edges parse flags: the ``llama-rag`` CLI (cli/) and the jobs' own entry points
(``python -m pipelines.ingest|classify|finetune``, for ``ray job submit``). Both map
``LlamaRagError`` to a one-line message and the error type's exit code here, so a
job fails the same way whichever way it was started. Light (click only).
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import click

from llama_rag.config import COLLECTION_PATTERN
from llama_rag.errors import LlamaRagError


class UserError(click.ClickException):
    """A LlamaRagError shown as one line, with the error type's exit code."""

    def __init__(self, error: LlamaRagError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code


class _Mapped:
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except LlamaRagError as exc:
            raise UserError(exc) from None


class MappedGroup(_Mapped, click.Group):
    """A command group that maps the project's errors (the CLI's top)."""


class MappedCommand(_Mapped, click.Command):
    """A command that maps the project's errors (a job's own entry point)."""


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="LLAMA_RAG_CONFIG", help="YAML settings file (env LLAMA_RAG_CONFIG).")


def collection_name(name: str | None) -> str | None:
    """A ``--collection`` value, checked (the same rule as the settings')."""
    if name is not None and not re.match(COLLECTION_PATTERN, name):
        raise click.BadParameter(f"{name!r}: use 1-64 lowercase letters, digits, '-' or '_'",
                                 param_hint="--collection")
    return name


collection_option = click.option(
    "--collection", callback=lambda c, p, v: collection_name(v),
    help="A named collection, kept in INDEX_DIR/collections/NAME and served beside the "
    "default one.")


filter_option = click.option(
    "--filter", "filters", metavar="FIELD=VALUE", multiple=True,
    help="Only chunks whose metadata FIELD equals VALUE (repeatable; docs/security.md).")


def metadata_filters(values: tuple[str, ...]) -> dict[str, str] | None:
    """``--filter FIELD=VALUE`` flags as ``filters.metadata`` (None without any)."""
    bad = [v for v in values if "=" not in v or not v.split("=", 1)[0].strip()]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not FIELD=VALUE", param_hint="--filter")
    return {k.strip(): v.strip() for k, v in (x.split("=", 1) for x in values)} or None


def settings_from(config_path: Path | None, **flags: Any):
    """Settings from the YAML file, the environment and the given flags (None: unset)."""
    from llama_rag.config import load_settings

    return load_settings(config_path, flags)


def job_entry_point(name: str, options: Callable, run: Callable[..., None],
                    argv: list[str] | None = None) -> None:
    """Run a job's own command line (``python -m pipelines.NAME``): its flags, ``run``,
    errors mapped as the CLI maps them."""
    def job(**kwargs: Any) -> None:
        run(**kwargs)

    job.__doc__ = run.__doc__
    command = click.command(name, cls=MappedCommand,
                            context_settings={"max_content_width": 100})(options(job))
    command.main(args=argv, prog_name=f"python -m pipelines.{name}")


def stdout_for_json():
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

"""`llama-rag audit`: read the audit trail (access.audit_log) the API writes."""

from __future__ import annotations

from pathlib import Path

import click

from llama_rag.commands import config_option, settings_from


@click.command()
@click.argument("log", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--subject", help="Only this caller (key:... or sub:..., as the lines name them).")
@click.option("--since", metavar="ISO-TIME", help="Only lines at or after this time (UTC).")
@click.option("--chunk", "chunk_id", metavar="ID", help="Only answers that showed this chunk.")
@click.option("--json", "as_json", is_flag=True, help="Print the matching lines as JSONL.")
@config_option
def audit(log: Path | None, subject: str | None, since: str | None, chunk_id: str | None,
          as_json: bool, config_path: Path | None) -> None:
    """Who asked what, and which chunks each answer showed (LOG default: access.audit_log)."""
    from services.audit import read

    path = log or settings_from(config_path).access.audit_log
    if path is None:
        raise click.UsageError("no audit log: give LOG or set access.audit_log")
    if not Path(path).expanduser().is_file():
        raise click.BadParameter(f"{path} does not exist", param_hint="LOG")
    found = 0
    for rec in read(Path(path).expanduser(), subject, since, chunk_id):
        found += 1
        if as_json:
            click.echo(rec.model_dump_json(exclude_none=True))
            continue
        groups = "all" if rec.groups is None else ",".join(rec.groups) or "public"
        click.echo(f"{rec.time} {rec.route:6} {rec.subject} groups={groups} "
                   f"version={rec.index_version} chunks={len(rec.chunk_ids)} "
                   f"request={rec.request_id}")
    if not as_json:
        click.echo(f"{found} line(s)", err=True)

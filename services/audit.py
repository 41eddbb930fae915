"""The audit trail: one JSON line per answer and per search (``access.audit_log``).

Each line says who asked (a key's digest prefix or a token's subject, never the key
or the token), with which groups, which chunks were shown (cited, or given to the
model), from which index version, and the question, unless ``privacy.mask_pii`` is on
(then only its length). Lines are appended with one ``write`` on a file opened with
O_APPEND, so API replicas on one machine can share the file.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, Field

from llama_rag.jsonl import records
from llama_rag.protocol import Access


class AuditRecord(BaseModel):
    """One audited request."""

    time: str
    request_id: str
    route: str
    subject: str
    groups: list[str] | None = Field(None, description="None: the caller reads every document.")
    collection: str | None = None
    index_version: str | None = None
    chunk_ids: list[str] = Field(default_factory=list)
    answerable: bool | None = None
    question: str | None = None
    question_chars: int | None = None


class AuditLog:
    """Appends AuditRecords to ``path`` (None: audit off)."""

    def __init__(self, path: Path | None, mask_pii: bool = False) -> None:
        self.path = Path(path).expanduser() if path else None
        self.mask_pii = mask_pii
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, route: str, request_id: str, access: Access | None, *,
               index_version: str | None, chunk_ids: list[str], collection: str | None = None,
               question: str | None = None, answerable: bool | None = None) -> None:
        if self.path is None:
            return
        line = AuditRecord(
            time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            request_id=request_id, route=route,
            subject=access.subject if access is not None else "anonymous",
            groups=sorted(access.groups) if access is not None and access.groups is not None
            else None, collection=collection, index_version=index_version, chunk_ids=chunk_ids,
            answerable=answerable, question=None if self.mask_pii else question,
            question_chars=len(question) if question is not None else None)
        data = (line.model_dump_json(exclude_none=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def read(path: Path, subject: str | None = None, since: str | None = None,
         chunk_id: str | None = None) -> Iterator[AuditRecord]:
    """The records of ``path``, optionally only one subject's, those at or after
    ``since`` (ISO time) or those that showed ``chunk_id``; unparsable lines are skipped
    (a line cut by a crash)."""
    with open(path, encoding="utf-8") as fh:
        for _, obj, error in records(fh):
            if error or obj is None:
                continue
            try:
                rec = AuditRecord.model_validate(obj)
            except ValueError:
                continue
            if subject and rec.subject != subject:
                continue
            if since and rec.time < since:
                continue
            if chunk_id and chunk_id not in rec.chunk_ids:
                continue
            yield rec

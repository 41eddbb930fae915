"""The audit trail: what a line holds, what it never holds, and `llama-rag audit`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import main
from llama_rag.protocol import Access
from services.audit import AuditLog, read


def test_lines_name_the_caller_and_chunks_and_hide_the_question_when_masking(tmp_path):
    path = tmp_path / "audit" / "log.jsonl"
    hr = Access(subject="key:0123456789ab", groups=frozenset({"hr"}))
    AuditLog(path).record("ask", "r1", hr, index_version="v1", chunk_ids=["a#0", "b#1"],
                          question="what is the leave policy?", answerable=True)
    AuditLog(path, mask_pii=True).record("search", "r2", None, index_version="v1",
                                         chunk_ids=[], question="mail bob@example.com")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["subject"] == "key:0123456789ab" and lines[0]["groups"] == ["hr"]
    assert lines[0]["chunk_ids"] == ["a#0", "b#1"] and lines[0]["question"].startswith("what")
    assert "question" not in lines[1] and lines[1]["question_chars"] == 20
    assert "bob" not in path.read_text() and lines[1]["subject"] == "anonymous"
    assert [r.request_id for r in read(path, chunk_id="b#1")] == ["r1"]
    (path.open("a")).write('{"cut by a cra')  # a torn last line is skipped, not fatal
    result = CliRunner().invoke(main, ["audit", str(path), "--subject", "key:0123456789ab"])
    assert result.exit_code == 0, result.output
    assert "groups=hr" in result.output and "request=r1" in result.output
    assert CliRunner().invoke(main, ["audit", str(tmp_path / "none.jsonl")]).exit_code == 2

"""schemathesis against the app's own OpenAPI schema, with auth on: no 5xx, and every
status code, content type and body is one the schema declares."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cluster import FUZZ_KEY, MAX_TOKENS_LIMIT

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
MAX_EXAMPLES = 6  # per operation and phase (generation routes run the model)
MAX_TIME_S = 80  # the run's time budget (one request may still run to its timeout)


def test_schemathesis_finds_no_server_error_and_no_undeclared_response(llm_server, pace,
                                                                        tmp_path, record):
    # the longest answer the session server gives (its max_tokens ceiling), one at a time
    request_timeout = round(pace.answer_s(MAX_TOKENS_LIMIT))
    started = time.perf_counter()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{llm_server}/openapi.json",
         "--header", f"Authorization: Bearer {FUZZ_KEY}", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES),
         "--workers", "1", "--request-timeout", str(request_timeout), "--max-time", str(MAX_TIME_S), "--rate-limit", "500/m",
         "--suppress-health-check", "all", "--generation-deterministic",
         "--report", "junit", "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=MAX_TIME_S + request_timeout + 120, env={**os.environ, "NO_COLOR": "1"})
    seconds = time.perf_counter() - started
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    print(output[-4000:])
    assert run.returncode == 0, output[-6000:]
    [report] = tmp_path.glob("*.xml")
    suites = ET.parse(report).getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) >= 10, output[-3000:]  # every route was exercised
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    record("schemathesis", operations=len(cases), seconds=round(seconds, 1),
           request_timeout_s=request_timeout,
           checks=CHECKS.split(","), max_examples=MAX_EXAMPLES,
           test_cases=int(generated.group(1)) if generated else None,
           passed=int(generated.group(2)) if generated else None)

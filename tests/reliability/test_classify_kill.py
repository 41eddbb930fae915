"""Kill a classification job's driver and an LLM worker midway, resubmit it with
`ray job submit`: every input id ends up exactly once, in the output or the errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.cluster import scrape_until
from tests.integration.test_classify import (LABELS, ROOT, input_ids, job_args,  # noqa: F401
                                             output_ids, packages)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
RAY = str(Path(sys.executable).parent / "ray")


def _submit(cluster, packages: Path, out: Path, *extra: str, wait: bool) -> subprocess.CompletedProcess:
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "LLAMA_RAG_HOME": os.environ.get(
        "LLAMA_RAG_HOME", str(Path("~/.cache/llama-rag").expanduser()))}}
    return subprocess.run(
        [RAY, "job", "submit", f"--address={cluster.dashboard}", "--working-dir", ".",
         "--runtime-env-json", json.dumps(runtime_env), *([] if wait else ["--no-wait"]), "--",
         sys.executable, *job_args(packages, out, *extra)],
        cwd=ROOT, env=cluster.env(), capture_output=True, text=True, timeout=900)


def _processes(*words: str) -> list[psutil.Process]:
    return [proc for proc in psutil.process_iter(["cmdline"])
            if all(w in " ".join(proc.info["cmdline"] or []) for w in words)]


def test_killed_driver_and_worker_then_resubmit_keeps_every_id_exactly_once(
        ray_cluster, packages, tmp_path, record):
    out = tmp_path / "out"
    first = _submit(ray_cluster, packages, out, "--batch-size", "16", wait=False)
    assert first.returncode == 0, first.stderr[-2000:]
    deadline = time.time() + 600
    while len(list((out / "parts").glob("part-*"))) < 2:
        assert time.time() < deadline, "no parts written in 600 s"
        time.sleep(0.5)
    workers = _processes("VLLMClassifier")  # Ray Data's actor holding the vLLM engine
    assert workers, "no classifier worker process found"
    workers[0].send_signal(signal.SIGKILL)
    time.sleep(3)
    drivers = _processes("pipelines.classify", str(out))  # the job's shell and its python
    assert drivers, "the driver ended before it could be killed"
    for driver in drivers:
        driver.send_signal(signal.SIGKILL)
    psutil.wait_procs(drivers, timeout=30)
    parts_at_kill = len(list((out / "parts").glob("part-*")))
    assert not (out / "summary.json").exists()
    time.sleep(3)

    again = _submit(ray_cluster, packages, out, "--batch-size", "64", wait=True)
    logs = again.stdout + again.stderr
    assert again.returncode == 0 and "succeeded" in logs.lower(), logs[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    ids = output_ids(out)
    assert sorted(ids) == sorted(input_ids(packages))  # each id exactly once
    assert summary["complete"] and summary["input"] == summary["labeled"] + summary["errors"]
    assert summary["skipped_already_done"] >= 2 * 16
    errors = [json.loads(ln) for ln in (out / "errors.jsonl").read_text().splitlines()]
    assert {"id": "zz-empty", "reason": "empty text"} in errors
    # the job's happy path, on the completing run (tests/integration/test_classify.py)
    assert "rows/s" in logs  # progress and the summary reach `ray job logs`
    assert summary["metrics"]["evaluated"] == summary["labeled"]
    assert set(summary["label_distribution"]) <= set(LABELS.split(","))
    labels = pq.read_table(sorted((out / "parts").glob("*.parquet"))[-1]).to_pylist()
    assert labels and all(0 < r["confidence"] <= 1 for r in labels)
    text = scrape_until(ray_cluster, ["ray_llama_rag_classify_rows"])
    assert 'outcome="labeled"' in text
    record("kill a classification job and resubmit", rows=summary["input"],
           parts_before_kill=parts_at_kill, killed=["worker", "driver"],
           resumed_skipped=summary["skipped_already_done"], ids_exactly_once=True)

"""Bulk classification as a real Ray job: real Debian package descriptions, real vLLM.

The job's happy path (`ray job submit`, progress in the job log, summary, metrics on
Ray's Prometheus endpoint) is checked on the resubmission in tests/multinode/test_jobs.py,
which runs the whole job once more after losing a worker node and the driver: one run
for the happy path and the resume, instead of a job here and another in the reliability
suite."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LABELS = "games,science,python,perl,doc,net"


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """300 package descriptions labelled by Debian Section, plus one empty row."""
    path = tmp_path_factory.mktemp("classify") / "packages.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "debian_packages.py"), str(path),
                    "--rows", "300"], check=True, capture_output=True)
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerow(["zz-empty", "", "games"])
    return path


def job_args(packages: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "pipelines.classify", "--input", str(packages), "--text-column", "text",
            "--id-column", "id", "--labels", LABELS, "--gold-column", "section",
            "--output", str(out), *extra]


def input_ids(packages: Path) -> list[str]:
    with open(packages, newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


def output_ids(out: Path) -> list[str]:
    """Every id in a job's result parts and its errors.jsonl (with repeats, if any)."""
    ids = [i for p in (out / "parts").glob("part-*.parquet")
           for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    return ids + [json.loads(ln)["id"] for ln in (out / "errors.jsonl").read_text().splitlines()]


def test_bad_arguments_exit_2_before_any_work(ray_cluster, packages, tmp_path):
    """Checked in the driver before Ray or a model starts (so it takes seconds)."""
    env = ray_cluster.env()
    cases = [(["--labels", "a,a"], "duplicate label"),
             (["--text-column", "body"], "'body' is not a column"),
             (["--input", str(tmp_path / "none" / "*.csv")], "no csv, jsonl or parquet")]
    for change, words in cases:
        argv = job_args(packages, tmp_path / "o")
        argv[argv.index(change[0]) + 1] = change[1]
        out = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and words in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists()



def test_a_job_with_no_ray_address_joins_the_cluster_started_on_this_machine(ray_cluster):
    """A user's `ray start --head` is up and RAY_ADDRESS is not set: a job's driver joins
    that cluster (as ray.init() finds it) instead of failing on the local-Ray flags."""
    env = ray_cluster.env()
    env.pop("RAY_ADDRESS")
    code = ("from llama_rag.ray_runtime import ensure_ray; ensure_ray(4); import ray; "
            "print('GCS', ray.get_runtime_context().gcs_address)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"GCS {ray_cluster.address}" in out.stdout, out.stdout

"""Multi-node tests: one three-node Ray cluster on this machine for the session
(tests/multinode/nodes.py), an index on a `file://` root beside it, and the jobs and the
Serve app run on it as on a cluster of machines. `make cluster-test` runs them alone;
`make test` runs them after the single-node suite (never both clusters at once: two cores)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import PY_DOCS, RAY, _kill_orphaned_engines, copy_pages, llama_rag
from tests.multinode.nodes import WORKERS, MultiNodeCluster, make_cluster

INDEX_PAGES = ["zipfile", "tarfile", "gzip", "csv", "json", "tempfile"]


@pytest.fixture(scope="session")
def mn_cluster():
    if not PY_DOCS.exists():
        pytest.fail(f"{PY_DOCS} missing: run `make testdata` (Debian python3.11-doc)")
    # short: a node's Unix sockets live under its temp folder (108-byte path limit)
    root = Path(tempfile.mkdtemp(prefix="mn-", dir="/tmp"))
    cluster = make_cluster(root)
    started = time.perf_counter()
    try:
        for name in ("head", *WORKERS):
            cluster.start(name)
    except Exception:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=cluster.env())
        raise
    cluster.startup_s = round(time.perf_counter() - started, 1)
    yield cluster
    subprocess.run([RAY, "stop", "--force"], capture_output=True, env=cluster.env())
    _kill_orphaned_engines()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def whole_cluster(mn_cluster: MultiNodeCluster) -> MultiNodeCluster:
    """The cluster with both workers alive: a node a test killed comes back as a
    replacement (a fresh raylet, as a cluster manager would start) after it."""
    yield mn_cluster
    alive = mn_cluster.node_ids()
    for name in WORKERS:
        if name not in alive:
            mn_cluster.start(name)


@dataclass
class SharedIndex:
    uri: str  # file:// root every node reads through its own cache
    path: Path
    version: str
    corpus: Path


@pytest.fixture(scope="session")
def shared_index(mn_cluster, tmp_path_factory) -> SharedIndex:
    """INDEX_PAGES indexed into a `file://` root by two embed actors (one per worker)."""
    import json

    root = tmp_path_factory.mktemp("shared")
    corpus = copy_pages(root / "corpus", INDEX_PAGES)
    path = root / "bucket" / "index"
    env = {"LLAMA_RAG_INGEST__EMBED_CONCURRENCY": "2"}
    out = llama_rag(mn_cluster, "index", str(corpus), "--index-dir", path.as_uri(), "--json",
                    "--no-progress", env=env, timeout=900)
    summary = json.loads(out.stdout)
    assert summary["published"], summary
    return SharedIndex(uri=path.as_uri(), path=path, version=summary["version"], corpus=corpus)

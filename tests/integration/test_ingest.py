"""Real Ray Data, real MiniLM, real FAISS on a part of the Python docs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexing.store import IndexStore
from tests.helpers import make_pdf, write_corpus
from tests.cluster import ROOT, copy_pages, llama_rag

pytestmark = pytest.mark.integration

PAGES = ["zipfile", "tarfile", "gzip", "zlib", "csv", "json", "pathlib", "shutil", "glob",
         "tempfile", "string", "bz2"]
BAD = {"bad/binary.txt": b"\x7fELF\x00\x00\x00", "bad/empty.md": b"",
       "bad/latin1.txt": "na\u00efve caf\u00e9".encode("latin-1"),
       "bad/broken.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ntruncated"}


@pytest.fixture(scope="module")
def docs(tmp_path_factory, ray_cluster):
    root = copy_pages(tmp_path_factory.mktemp("pydocs"), PAGES)
    write_corpus(root, {**BAD, "notes/ray.md": "# Ray\n\nRay Data streams blocks between actors.",
                        "notes/paper.pdf": make_pdf("FAISS HNSW graphs give fast recall")})
    index_dir = root.parent / "index"
    out = llama_rag(ray_cluster, "index", str(root), "--index-dir", str(index_dir), "--json")
    return root, index_dir, json.loads(out.stdout), out.stderr


def test_first_run_indexes_real_docs_and_lists_bad_files(docs):
    root, index_dir, summary, stderr = docs
    assert summary["published"] and summary["added"] == len(PAGES) + 2 + len(BAD)
    assert summary["failed"] == len(BAD)
    assert "indexing: 100%" in stderr  # the progress bar ran to the end
    version = IndexStore(index_dir).open()
    assert version.manifest.embedder.name == "all-MiniLM-L6-v2"
    assert version.manifest.embedder.dim == 384
    errors = {e["source"]: e["error"] for e in map(json.loads, (version.path / "errors.jsonl")
                                                   .read_text().splitlines())}
    assert set(errors) == set(BAD)
    assert "binary" in errors["bad/binary.txt"] and "UTF-8" in errors["bad/latin1.txt"]
    assert "PDF" in errors["bad/broken.pdf"] and "empty" in errors["bad/empty.md"]
    assert summary["chunks_total"] == version.chunks.num_rows == version.index.ntotal


def test_search_ranks_zipfile_for_zip_question(docs, ray_cluster):
    _, index_dir, _, _ = docs
    out = llama_rag(ray_cluster, "search", "how do I read a zip archive", "--index-dir",
                    str(index_dir), "-k", "3", "--json")
    hits = json.loads(out.stdout)
    assert [set(h) for h in hits] == [{"rank", "score", "source", "title", "text", "chunk_id"}] * 3
    assert "library/zipfile.html" in [h["source"] for h in hits]


def test_rerun_embeds_nothing_then_only_what_changed(docs, ray_cluster):
    root, index_dir, _, _ = docs
    out = llama_rag(ray_cluster, "index", str(root), "--index-dir", str(index_dir), "--json")
    again = json.loads(out.stdout)
    assert (again["chunks_embedded"], again["published"], again["unchanged"]) == (0, False, len(PAGES) + 2)
    (root / "notes/ray.md").write_text("# Ray\n\nRay Serve routes requests to replicas.")
    (root / "library/bz2.html").unlink()
    out = llama_rag(ray_cluster, "index", str(root), "--index-dir", str(index_dir), "--json")
    changed = json.loads(out.stdout)
    assert (changed["updated"], changed["deleted"], changed["added"]) == (1, 1, 0)
    assert changed["chunks_embedded"] == 1
    sources = set(IndexStore(index_dir).open().chunks.column("source").to_pylist())
    assert "library/bz2.html" not in sources and "library/zipfile.html" in sources


def test_second_indexer_fails_fast_with_lock_message(docs, ray_cluster):
    root, index_dir, _, _ = docs
    with IndexStore(index_dir).lock():
        started = time.time()
        out = llama_rag(ray_cluster, "index", str(root), "--index-dir", str(index_dir), check=False)
    assert out.returncode == 3 and "locked by another indexer" in out.stderr
    assert time.time() - started < 60


def test_killed_indexer_leaves_current_version_intact(docs, ray_cluster, tmp_path):
    root, index_dir, _, _ = docs
    store = IndexStore(index_dir)
    before = store.current()
    copy_pages(root, ["os", "re"])  # big pages: the run is still embedding when killed
    proc = subprocess.Popen([str(Path(sys.executable).parent / "llama-rag"), "index", str(root),
                             "--index-dir", str(index_dir)], env=ray_cluster.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and subprocess.run(
            ["pgrep", "-f", r"MapBatches\(Embed\)"], capture_output=True).returncode != 0:
        time.sleep(0.5)  # wait for the embedder actor of this run
    time.sleep(5)  # now inside the embed stage
    assert proc.poll() is None, "the indexer finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.current() == before
    version = store.open()
    assert version.hits(*version.nearest(version.vectors[0], 1))[0].rank == 1
    for page in ("os", "re"):
        (root / "library" / f"{page}.html").unlink()


def test_ray_job_submit_runs_the_pipeline(ray_cluster, tmp_path):
    corpus = write_corpus(tmp_path / "small", {"a.md": "# A\n\nRay jobs run drivers on the cluster.",
                                               "b.txt": "FAISS keeps vectors in memory."})
    index_dir = tmp_path / "job-index"
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit",
           f"--address={ray_cluster.dashboard}", "--working-dir", str(ROOT), "--",
           sys.executable, "-m", "pipelines.ingest", str(corpus), "--index-dir", str(index_dir),
           "--json", "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ray_cluster.env())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert IndexStore(index_dir).open().chunks.num_rows == 2


def test_an_index_at_a_uri_is_shared_by_nodes_with_their_own_caches(ray_cluster, tmp_path):
    """Shared storage: one node indexes into a URI root, another searches it from its cache."""
    corpus = copy_pages(tmp_path / "docs", ["zipfile", "csv"])
    uri = (tmp_path / "bucket" / "idx").as_uri()
    configs = {}
    for node in ("indexer", "replica"):
        configs[node] = tmp_path / f"{node}.yaml"
        configs[node].write_text(f"index:\n  cache_dir: {tmp_path / node}-cache\n")
    out = llama_rag(ray_cluster, "index", str(corpus), "--index-dir", uri, "--json",
                    "--no-progress", "--config", str(configs["indexer"]))
    summary = json.loads(out.stdout)
    assert summary["index_dir"] == uri and summary["published"]
    assert (tmp_path / "bucket" / "idx" / "CURRENT").read_text().strip() == summary["version"]
    hits = json.loads(llama_rag(ray_cluster, "search", "how do I read a zip archive",
                                "--index-dir", uri, "-k", "3", "--json",
                                "--config", str(configs["replica"])).stdout)
    assert hits[0]["source"] == "library/zipfile.html"
    assert list((tmp_path / "replica-cache").rglob(f"{summary['version']}/index.faiss"))

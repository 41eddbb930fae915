"""Indexing on three nodes: the embed actors run on both workers, every node reads the
`file://` index root through its own cache, and an ingest that loses a worker node
publishes completely or not at all (a re-run then publishes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexing.store import IndexStore
from tests.cluster import copy_pages, llama_rag

pytestmark = [pytest.mark.integration, pytest.mark.multinode]
TWO_ACTORS = {"LLAMA_RAG_INGEST__EMBED_CONCURRENCY": "2"}


def test_embed_actors_ran_on_both_worker_nodes(mn_cluster, shared_index):
    embedders = mn_cluster.actors("Embed", state="")
    assert {a["node"] for a in embedders} == {"worker-a", "worker-b"}, embedders
    assert (shared_index.path / "CURRENT").read_text().strip() == shared_index.version


def test_each_node_searches_the_shared_root_through_its_own_cache(whole_cluster, shared_index,
                                                                  tmp_path):
    """A task pinned to each worker (by its custom resource) searches the URI root: the
    version lands in that node's own cache folder, not in a shared one."""
    script = tmp_path / "search_on_nodes.py"
    script.write_text(f"""
import json, ray
from llama_rag.config import load_settings
from llama_rag.protocol import SearchRequest

@ray.remote(num_cpus=1)
def search(uri):
    from indexing.retriever import RetrieverCore
    core = RetrieverCore(load_settings(overrides={{"index.dir": uri}}))
    return core.search(SearchRequest(query="how do I read a zip archive", k=1)).hits[0].source

ray.init()
print(json.dumps({{n: ray.get(search.options(resources={{n: 1}}).remote({shared_index.uri!r}))
                  for n in ("worker-a", "worker-b")}}))
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, env=whole_cluster.env(PYTHONPATH=str(Path.cwd())))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "worker-a": "library/zipfile.html", "worker-b": "library/zipfile.html"}
    for name in ("worker-a", "worker-b"):
        cached = list(whole_cluster.nodes[name].index_cache.rglob(f"{shared_index.version}/index.faiss"))
        assert cached, f"{name} did not read through its own cache"


def test_ingest_that_loses_a_node_publishes_completely_or_not_at_all(whole_cluster, tmp_path,
                                                                     record):
    corpus = copy_pages(tmp_path / "corpus", ["glob", "fnmatch"])
    root = tmp_path / "bucket" / "index"
    uri = root.as_uri()
    first = json.loads(llama_rag(whole_cluster, "index", str(corpus), "--index-dir", uri,
                                 "--json", "--no-progress", env=TWO_ACTORS, timeout=900).stdout)
    before = (root / "CURRENT").read_text().strip()
    assert before == first["version"]
    big = ["os", "re", "argparse", "logging", "typing"]  # about a minute of embedding
    copy_pages(corpus, big)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "llama-rag"), "index", str(corpus), "--index-dir",
         uri, "--json", "--no-progress"], env=whole_cluster.env(**TWO_ACTORS),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while set(whole_cluster.processes("ray::MapWorker(MapBatches(Embed))")) != {"worker-a",
                                                                                "worker-b"}:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "the embed actors never ran on both workers"
        time.sleep(2)
    time.sleep(8)  # inside the embed stage on both nodes
    assert proc.poll() is None, "the ingest finished before the node could be killed"
    killed_at = whole_cluster.kill("worker-b")
    stdout, stderr = proc.communicate(timeout=900)
    ended_s = time.perf_counter() - killed_at
    current = (root / "CURRENT").read_text().strip()
    if proc.returncode == 0:  # Ray Data restarted the actor on worker-a: a complete version
        outcome = "finished (Ray restarted the lost embed actor)"
        assert json.loads(stdout)["published"] and current != before
    else:  # the run failed: nothing of it was published
        outcome = f"failed ({stderr.strip().splitlines()[-1][:200] if stderr.strip() else proc.returncode})"
        assert current == before, "a failed ingest changed CURRENT"
    # both ways the published version opens and holds whole documents
    store = IndexStore(uri, tmp_path / "cache")
    assert store.open().chunks.num_rows > 0
    whole_cluster.start("worker-b")  # a replacement node joins
    again = json.loads(llama_rag(whole_cluster, "index", str(corpus), "--index-dir", uri, "--json",
                                 "--no-progress", env=TWO_ACTORS, timeout=900).stdout)
    final = (root / "CURRENT").read_text().strip()
    assert final == (again["version"] if again["published"] else current)
    sources = set(IndexStore(uri, tmp_path / "cache2").open().chunks.column("source").to_pylist())
    assert {f"library/{p}.html" for p in ["glob", "fnmatch", *big]} <= sources
    record("multi-node: lose a worker node during an ingest", outcome=outcome,
           run_ended_s_after_kill=round(ended_s, 1), current_before=before,
           current_after_kill=current, rerun_published=bool(again["published"]),
           rerun_embedded=again["chunks_embedded"])

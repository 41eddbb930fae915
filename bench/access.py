"""What access control costs, and whether it changes what a group finds.

Cost: a version of 100,000 chunks in 10 access groups (the Python docs' chunks, copied
until there are enough, each copy of a page in one group; synthetic clustered vectors,
so the FAISS index is the HNSW one `llama-rag index` builds at that size), the
retriever core's search as the API runs it (query embedding included), hybrid mode,
with no limit and as a reader of one group, interleaved in one run; the retrieval
alone (the query vector given) is reported too.

Quality: the Python docs pages of eval/python-docs-qa.jsonl and as many others,
really embedded, the pages dealt to 10 groups; each question asked as a reader of its
page's group, against the labeled index and against an index of only that group's
rows (sliced from the same version: the same vectors an index of only those files
would hold). hit@5 must agree within a point (dense, lexical and hybrid).

    python bench/access.py [--rows 100000] [--groups 10] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

PY_DOCS = Path("/usr/share/doc/python3.11/html")
QA = Path(__file__).resolve().parents[1] / "eval" / "python-docs-qa.jsonl"


def _chunks(pages: list[Path], settings) -> list[dict]:
    """The chunks of ``pages`` as ingest makes them (loader, chunker, metadata)."""
    from indexing.chunking import Chunker
    from indexing.corpus import SourceFile, load_chunks
    from indexing.embedder import resolve_embedder, token_counter

    chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                      token_counter(resolve_embedder(settings).path))
    out = []
    for page in pages:
        source = str(page.relative_to(PY_DOCS))
        try:
            loaded = load_chunks(SourceFile(path=str(page), source=source, hash="-"), chunker,
                                 settings.index)
        except Exception:  # a page without text: not part of the bench
            continue
        out += [c.model_dump() | {"embed": c.embed_text()} for c in loaded.chunks]
    return out


def _publish(root: Path, rows: list[dict], vectors: np.ndarray, settings) -> "object":
    """A published version of ``rows`` (with their ``groups``) and ``vectors``."""
    import pyarrow as pa

    from indexing.embedder import resolve_embedder
    from indexing.store import CHUNK_SCHEMA, IndexStore, Manifest

    table = pa.Table.from_pylist([{**{k: r[k] for k in CHUNK_SCHEMA.names if k != "metadata"},
                                   "metadata": json.dumps(r["metadata"])} for r in rows],
                                 schema=CHUNK_SCHEMA)
    store = IndexStore(root)
    manifest = Manifest(embedder=resolve_embedder(settings).info(vectors.shape[1]), chunking={})
    with store.lock():
        vid = store.stage(table, vectors, manifest, [], settings.index)
        store.promote(vid, settings.index)
    return store


def cost(args, settings, embedder) -> dict:
    from bench.search import synthetic
    from indexing.ranking import search_version
    from indexing.retriever import RetrieverCore
    from llama_rag.protocol import Access, SearchRequest

    pages = sorted((PY_DOCS / "library").glob("*.html"))
    base = _chunks(pages, settings)
    rows, copy = [], 0
    while len(rows) < args.rows:
        for c in base:
            if len(rows) == args.rows:
                break
            group = f"g{(hash(c['source']) + copy) % args.groups}"
            rows.append({**c, "id": f"c{copy}/{c['id']}", "doc_id": f"c{copy}/{c['doc_id']}",
                         "source": f"c{copy}/{c['source']}", "groups": [group]})
        copy += 1
    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(update={"index": settings.index.model_copy(
            update={"dir": f"{tmp}/index"})})
        started = time.perf_counter()
        _publish(Path(tmp) / "index", rows, synthetic(len(rows), embedder.info.dim, 1000), s)
        print(f"{len(rows)} chunks ({len(base)} distinct) in {args.groups} groups; built in "
              f"{time.perf_counter() - started:.0f} s")
        core = RetrieverCore(s, embedder=embedder)
        version = core.versions["default"]
        questions = [json.loads(x)["question"] for x in QA.read_text().splitlines()]
        queries = (questions * (args.queries // len(questions) + 1))[: args.queries]
        reader = Access(subject="bench", groups=frozenset({"g3"}))
        for q in queries[:5]:  # first calls build the caches (row masks, BM25 arrays)
            core.search(SearchRequest(query=q, k=5), reader)
            core.search(SearchRequest(query=q, k=5))
        lat = {"none": [], "group": [], "none_retrieval": [], "group_retrieval": []}
        for i, q in enumerate(queries):
            vector = embedder.encode([q])[0]
            order = [("none", None), ("group", reader)]
            for name, access in order if i % 2 else order[::-1]:  # interleaved: shared drift
                t = time.perf_counter()
                core.search(SearchRequest(query=q, k=5), access)
                lat[name].append((time.perf_counter() - t) * 1000)
                from indexing.filters import visible_rows

                t = time.perf_counter()
                search_version(version, q, vector, 5, s.retrieval,
                               rows=visible_rows(version, None, access))
                lat[f"{name}_retrieval"].append((time.perf_counter() - t) * 1000)
    p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
    out = {"rows": len(rows), "distinct_chunks": len(base), "groups": args.groups,
           "queries": len(queries), "mode": settings.retrieval.mode,
           "faiss": version.manifest.index.factory, "p50_ms": p50,
           "overhead": p50["group"] / p50["none"] - 1,
           "overhead_retrieval_only": p50["group_retrieval"] / p50["none_retrieval"] - 1}
    print(f"search p50: no limit {p50['none']:.2f} ms, one group {p50['group']:.2f} ms "
          f"({out['overhead']:+.1%}); retrieval alone {p50['none_retrieval']:.2f} vs "
          f"{p50['group_retrieval']:.2f} ms ({out['overhead_retrieval_only']:+.1%})")
    return out


def quality(args, settings, embedder) -> dict:
    from indexing.retriever import RetrieverCore
    from llama_rag.protocol import Access, SearchRequest

    items = [json.loads(x) for x in QA.read_text().splitlines()]
    items = [x for x in items if x.get("sources")]
    wanted = sorted({s for x in items for s in x["sources"]})
    others = sorted(p for p in (PY_DOCS / "library").glob("*.html")
                    if str(p.relative_to(PY_DOCS)) not in wanted)
    random.Random(0).shuffle(others)
    pages = [PY_DOCS / s for s in wanted] + others[: len(wanted)]
    chunks = _chunks(pages, settings)
    started = time.perf_counter()
    vectors = embedder.encode([c["embed"] for c in chunks])
    print(f"{len(chunks)} chunks of {len(pages)} pages embedded in "
          f"{time.perf_counter() - started:.0f} s")
    group_of = {str(p.relative_to(PY_DOCS)): f"g{i % args.groups}" for i, p in enumerate(pages)}
    for c in chunks:
        c["groups"] = [group_of[c["source"]]]
    modes = ["dense", "lexical", "hybrid"]
    hits = {m: {"labeled": 0, "alone": 0} for m in modes}
    asked = 0
    with tempfile.TemporaryDirectory() as tmp:
        def core_of(name: str, rows: list[dict], vecs: np.ndarray) -> RetrieverCore:
            s = settings.model_copy(update={"index": settings.index.model_copy(
                update={"dir": f"{tmp}/{name}"})})
            _publish(Path(tmp) / name, rows, vecs, s)
            return RetrieverCore(s, embedder=embedder)

        labeled = core_of("all", chunks, vectors)
        for g in sorted(set(group_of.values())):
            keep = [i for i, c in enumerate(chunks) if c["groups"] == [g]]
            alone = core_of(g, [chunks[i] for i in keep], vectors[keep])
            mine = [x for x in items if group_of.get(x["sources"][0]) == g]
            reader = Access(subject="bench", groups=frozenset({g}))
            for x in mine:
                asked += 1
                for m in modes:
                    request = SearchRequest(query=x["question"], k=5, mode=m)
                    for name, found in (("labeled", labeled.search(request, reader)),
                                        ("alone", alone.search(request))):
                        hits[m][name] += any(h.source in x["sources"] for h in found.hits)
    rates = {m: {k: v / asked for k, v in h.items()} for m, h in hits.items()}
    for m, r in rates.items():
        print(f"hit@5 {m:7}: labeled index read by the group {r['labeled']:.3f}, index of "
              f"only its pages {r['alone']:.3f}")
    return {"questions": asked, "pages": len(pages), "chunks": len(chunks), "hit_at_5": rates,
            "max_gap": max(abs(r["labeled"] - r["alone"]) for r in rates.values())}


def main() -> None:
    from indexing.retriever import settings_embedder
    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    settings = load_settings(None, {})
    apply_offline_policy(settings.models)
    embedder = settings_embedder(settings)
    result = {"cost": cost(args, settings, embedder), "quality": quality(args, settings, embedder)}
    save("access", result)
    p50 = result["cost"]["p50_ms"]
    bar_chart("access", f"search p50 at {result['cost']['rows']} chunks, {args.groups} groups",
              ["no limit", "one group"],
              {"search (ms)": [p50["none"], p50["group"]],
               "retrieval alone (ms)": [p50["none_retrieval"], p50["group_retrieval"]]}, "")


if __name__ == "__main__":
    main()

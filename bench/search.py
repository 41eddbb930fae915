"""FAISS index kinds at >= 100k vectors: flat (exact, the baseline) vs HNSW vs IVF-PQ.

Reports recall@10 against flat, p50/p99 single-query latency, build time and index
size, with the parameters `llama-rag index` uses by default (config IndexSettings).
Vectors: by default 100k synthetic unit vectors in 384 dims drawn around 1,000
centres with noise as large as the centre (cosine to the centre about 0.7, each
query's ten neighbours nearly equidistant among ~100 cluster mates: much harder than
tight clusters, easier than uniform noise, which no corpus resembles);
`--vectors FILE.npy` runs on real embeddings, e.g. an index version's vectors.npy.

    python bench/search.py [--n 100000] [--queries 1000] [--vectors FILE.npy]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402


def synthetic(n: int, dim: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    if centres:
        x += rng.standard_normal((centres, dim)).astype(np.float32)[rng.integers(0, centres, n)]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure(index, info, base: np.ndarray, queries: np.ndarray,
            k: int) -> tuple[np.ndarray, list[float]]:
    """Single-query latency through the same search function `llama-rag search` uses."""
    from indexing import faiss_index

    ids, lat = [], []
    for q in queries:
        t = time.perf_counter()
        _, i = faiss_index.search(index, info, base, q, k)
        lat.append((time.perf_counter() - t) * 1000)
        ids.append(i[0])
    return np.array(ids), lat


def main() -> None:
    import faiss

    from indexing import faiss_index
    from llama_rag.config import IndexSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--vectors", type=Path)
    parser.add_argument("--centres", type=int, default=1000,
                        help="synthetic clusters; 0 draws uniform random directions (worst case)")
    parser.add_argument("--name", default="search", help="results file name under bench/results")
    args = parser.parse_args()
    k = 10
    if args.vectors:
        data = np.load(args.vectors).astype(np.float32)
        rng = np.random.default_rng(1)
        rng.shuffle(data)
        base, queries, source = data[args.queries:], data[: args.queries], str(args.vectors)
    else:
        allv = synthetic(args.n + args.queries, 384, args.centres)
        kind = f"{args.centres} clusters" if args.centres else "uniform random"
        base, queries, source = allv[: args.n], allv[args.n:], f"synthetic, {kind}, 384 dims"
    print(f"{len(base)} vectors ({source}), {len(queries)} queries, k={k}")
    results = {}
    truth = None
    for kind in ("flat", "hnsw", "ivfpq"):
        t = time.perf_counter()
        index, info = faiss_index.build(base, IndexSettings(kind=kind))
        build_s = time.perf_counter() - t
        ids, lat = measure(index, info, base, queries, k)
        if truth is None:
            truth = ids
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth)]))
        size_mb = len(faiss.serialize_index(index)) / 1e6
        results[kind] = {"factory": info.factory, "search_params": info.search_params,
                         "refine": info.refine,
                         "recall_at_10": recall, "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99)), "build_s": build_s,
                         "size_mb": size_mb}
        params = {**info.search_params, **({"refine": info.refine} if info.refine else {})}
        print(f"{kind:6} {info.factory:16} {str(params):30} recall@10 {recall:.3f}  "
              f"p50 {results[kind]['p50_ms']:.3f} ms  p99 {results[kind]['p99_ms']:.3f} ms  "
              f"build {build_s:.1f} s  size {size_mb:.1f} MB")
    for kind in ("hnsw", "ivfpq"):
        speedup = results["flat"]["p50_ms"] / results[kind]["p50_ms"]
        results[kind]["p50_speedup_vs_flat"] = speedup
        print(f"{kind}: {speedup:.1f}x faster than flat at p50, recall@10 {results[kind]['recall_at_10']:.3f}")
    save(args.name, {"vectors": len(base), "source": source, "queries": len(queries), "k": k,
                    "results": results})
    kinds = list(results)
    bar_chart(args.name, f"FAISS on {len(base)} vectors ({source})", kinds,
              {"recall@10": [results[x]["recall_at_10"] for x in kinds],
               "p50 latency (ms)": [results[x]["p50_ms"] for x in kinds],
               "size (MB)": [results[x]["size_mb"] for x in kinds]}, "")


if __name__ == "__main__":
    main()

"""Embedding throughput: the Ray Data embed stage of `llama-rag index` vs a bare encode loop.

Both sides embed the same chunks (real Python-docs pages chunked by our chunker)
with the same model, starting from nothing loaded: the bare side times
import + model load + encode in this process, the Ray side times the dataset run
(actor start, import, load, encode, results back to the driver) on a Ray that is
already up, as on a cluster. Prints chunks/s of each and the ratio Ray / bare.

    python bench/embed.py [--chunks 2000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html/library")


def make_chunks(limit: int, settings) -> list[str]:
    from indexing.chunking import Chunker
    from indexing.corpus import SourceFile, chunk_file
    from indexing.embedder import token_counter
    from llama_rag.models import resolve_embedder

    chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                      token_counter(resolve_embedder(settings).path))
    texts: list[str] = []
    for page in sorted(DOCS.glob("*.html")):
        source = f"library/{page.name}"
        chunks = chunk_file(SourceFile(path=str(page), source=source, hash=""), chunker, settings.index)
        texts += [c.embed_text() for c in chunks]
        if len(texts) >= limit:
            return texts[:limit]
    return texts


def bare(texts: list[str], path: str, batch_size: int) -> float:
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    assert len(vectors) == len(texts)
    return time.perf_counter() - started


def ray_pipeline(texts: list[str], settings) -> float:
    from llama_rag.models import resolve_embedder
    from llama_rag.ray_runtime import ensure_ray
    from pipelines.ingest import embed_stage

    ensure_ray(settings.ray.num_cpus)  # first: a local Ray is loopback-only
    import ray

    started = time.perf_counter()
    ds = ray.data.from_items([{"embed_text": t, "error": ""} for t in texts])
    n = 0
    for batch in embed_stage(ds, resolve_embedder(settings), settings).iter_batches(
            batch_size=None, batch_format="numpy"):
        n += len(batch["vector"])
    assert n == len(texts)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32,
                        help="forward-pass batch on both sides (sentence-transformers' default)")
    args = parser.parse_args()

    from llama_rag.config import load_settings
    from llama_rag.models import apply_offline_policy, resolve_embedder

    settings = load_settings(None, {"ingest.encode_batch_size": args.batch_size})
    apply_offline_policy(settings.models)
    texts = make_chunks(args.chunks, settings)
    chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} chunks from {DOCS} (mean {chars:.0f} chars), batch {args.batch_size}")
    t_bare = bare(texts, resolve_embedder(settings).path, args.batch_size)
    t_ray = ray_pipeline(texts, settings)
    bare_cps, ray_cps = len(texts) / t_bare, len(texts) / t_ray
    ratio = ray_cps / bare_cps
    print(f"bare sentence-transformers encode: {t_bare:7.1f} s  {bare_cps:6.2f} chunks/s")
    print(f"Ray Data embed stage:              {t_ray:7.1f} s  {ray_cps:6.2f} chunks/s")
    print(f"ratio Ray / bare: {ratio:.3f}")
    save("embed", {"chunks": len(texts), "mean_chars": round(chars), "batch_size": args.batch_size,
                   "bare": {"seconds": t_bare, "chunks_per_s": bare_cps},
                   "ray_data": {"seconds": t_ray, "chunks_per_s": ray_cps},
                   "ratio_ray_over_bare": ratio})
    bar_chart("embed", f"MiniLM embedding, {len(texts)} Python-docs chunks",
              ["bare encode", "Ray Data"], {"chunks/s": [bare_cps, ray_cps]}, "chunks/s")


if __name__ == "__main__":
    main()

"""Embedding backends: torch vs ONNX Runtime vs OpenVINO (float32 and int8), bare loops
on the same chunks, their retrieval quality, and the Ray Data stage of the default.

Every backend encodes the same chunks (real Python-docs pages chunked by our chunker:
the pages of the dev QA set `eval/python-docs-qa.jsonl` first, then more library
pages up to --chunks) with the same model, each timed from nothing loaded (import +
load + encode; the export itself is made beforehand, as `llama-rag setup` does).
Per backend: chunks/s and the ratio to torch, the cosine of its vectors to torch's
(min and mean), and dense retrieval of the dev questions over those chunks (hit@1,
hit@5, MRR: the first chunk of an expected page). Then the Ray Data embed stage of
`llama-rag index` with the default backend, against that backend's bare loop.

    python bench/embed.py [--chunks 2000] [--batch-size 32] [--backends torch,onnx,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path("/usr/share/doc/python3.11/html")
DEV_SET = ROOT / "eval" / "python-docs-qa.jsonl"
VARIANTS = {"torch": ("torch", "none"), "onnx": ("onnx", "none"), "onnx-int8": ("onnx", "int8"),
            "openvino": ("openvino", "none"), "openvino-int8": ("openvino", "int8")}


def dev_questions() -> list[dict]:
    return [q for q in map(json.loads, DEV_SET.read_text().splitlines()) if q.get("sources")]


def make_chunks(limit: int, settings, first: list[str]) -> tuple[list[str], list[str]]:
    """(embed texts, their sources): every chunk of the pages in ``first`` (the dev
    questions' pages), then library pages in order until ``limit`` chunks."""
    from indexing.chunking import Chunker
    from indexing.corpus import SourceFile, chunk_file
    from indexing.embedder import token_counter
    from llama_rag.model_files import prepare_embedder

    chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                      token_counter(str(prepare_embedder(settings))))
    pages = first + [f"library/{p.name}" for p in sorted((DOCS / "library").glob("*.html"))
                     if f"library/{p.name}" not in first]
    texts: list[str] = []
    sources: list[str] = []
    for source in pages:
        chunks = chunk_file(SourceFile(path=str(DOCS / source), source=source, hash=""), chunker,
                            settings.index)
        texts += [c.embed_text() for c in chunks]
        sources += [source] * len(chunks)
        if len(texts) >= limit and source not in first:
            break
    return texts, sources


def ranks(questions: list[dict], vectors, query_vectors, sources: list[str]) -> list[int | None]:
    """Rank of each question's first chunk from an expected page (None: not in the top 50)."""
    import numpy as np

    out: list[int | None] = []
    for q, qv in zip(questions, query_vectors):
        order = np.argsort(-(vectors @ qv))[:50]
        want = set(q["sources"])
        out.append(next((r for r, i in enumerate(order, 1) if sources[i] in want), None))
    return out


def bare(variant: str, texts: list[str], questions: list[dict], sources: list[str],
         settings) -> dict:
    """One backend from nothing loaded: load, encode the chunks (timed), then the questions."""
    from indexing.embedder import Embedder
    from qa.evaluation.report import hit_at, mrr
    from indexing.embedder import resolve_embedder

    backend, quantization = VARIANTS[variant]
    ref = resolve_embedder(settings.model_copy(update={"models": settings.models.model_copy(
        update={"embed_backend": backend, "embed_quantization": quantization})}))
    started = time.perf_counter()
    embedder = Embedder(ref, "cpu", settings.ingest.encode_batch_size)
    loaded = time.perf_counter()
    vectors = embedder.encode(texts)
    done = time.perf_counter()
    r = ranks(questions, vectors, embedder.encode([q["question"] for q in questions]), sources)
    return {"vectors": vectors, "load_s": round(loaded - started, 2),
            "encode_s": round(done - loaded, 2), "seconds": round(done - started, 2),
            "chunks_per_s": round(len(texts) / (done - started), 2),
            "hit_at_1": hit_at(r, 1), "hit_at_5": hit_at(r, 5), "mrr": mrr(r)}


def ray_stage(texts: list[str], settings) -> dict:
    """The Ray Data embed stage of `llama-rag index` over ``texts`` (Ray up): seconds
    and chunks/s, from the dataset's creation to the last vector back."""
    from indexing.embedder import resolve_embedder
    from llama_rag.ray_runtime import ensure_ray
    from pipelines.ingest import embed_stage

    ensure_ray(settings.ray.num_cpus)  # first: a local Ray is loopback-only
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    ref = resolve_embedder(settings)
    started = time.perf_counter()
    ds = ray.data.from_items([{"embed_text": t, "error": ""} for t in texts])
    n = 0
    for batch in embed_stage(ds, ref, settings).iter_batches(batch_size=None,
                                                              batch_format="numpy"):
        n += len(batch["vector"])
    assert n == len(texts)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "chunks_per_s": n / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000,
                        help="at least this many chunks (all of the dev pages' chunks)")
    parser.add_argument("--batch-size", type=int, help="forward-pass batch (default: ours)")
    parser.add_argument("--backends", default=",".join(VARIANTS))
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data stage")
    parser.add_argument("--name", default="embed", help="results file name under bench/results")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating bare / Ray rounds for the Ray Data ratio")
    args = parser.parse_args()

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    overrides = {"ingest.encode_batch_size": args.batch_size} if args.batch_size else {}
    settings = load_settings(None, overrides)
    apply_offline_policy(settings.models)
    questions = dev_questions()
    pages = sorted({s for q in questions for s in q["sources"]})
    texts, sources = make_chunks(args.chunks, settings, pages)
    chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} chunks from {len(set(sources))} pages of {DOCS} (mean {chars:.0f} "
          f"chars), {len(questions)} dev questions, batch {settings.ingest.encode_batch_size}")
    variants = [v for v in args.backends.split(",") if v]
    for v in variants:  # exports made before any timing, as `llama-rag setup` does
        bare(v, texts[:4], questions[:1], sources[:4], settings)
    results = {v: bare(v, texts, questions, sources, settings) for v in variants}
    torch = results.get("torch")
    reference = torch["vectors"] if torch else None
    print(f"{'backend':14} {'chunks/s':>9} {'x torch':>8} {'cos min':>8} {'cos mean':>9} "
          f"{'hit@1':>6} {'hit@5':>6} {'MRR':>6}")
    for v, r in results.items():
        vectors = r.pop("vectors")
        if reference is not None:
            cos = (vectors * reference).sum(axis=1)
            r.update(cos_min=round(float(cos.min()), 5), cos_mean=round(float(cos.mean()), 5),
                     ratio_to_torch=round(r["chunks_per_s"] / torch["chunks_per_s"], 3))
        print(f"{v:14} {r['chunks_per_s']:9.2f} {r.get('ratio_to_torch', float('nan')):8.2f} "
              f"{r.get('cos_min', float('nan')):8.4f} {r.get('cos_mean', float('nan')):9.4f} "
              f"{r['hit_at_1']:6.3f} {r['hit_at_5']:6.3f} {r['mrr']:6.3f}")
    default = f"{settings.models.embed_backend}" + (
        "-int8" if settings.models.embed_quantization == "int8"
        and settings.models.embed_backend != "torch" else "")
    payload = {"chunks": len(texts), "pages": len(set(sources)), "mean_chars": round(chars),
               "questions": len(questions), "batch_size": settings.ingest.encode_batch_size,
               "default": default, "backends": results}
    if not args.no_ray and default in results:
        # alternating rounds (bare first, then Ray first, ...), median of the ratios:
        # the host's speed drifts by 10% from one minute to the next
        rounds = []
        for r in range(args.rounds):
            sides = {"bare": lambda: bare(default, texts, questions[:1], sources, settings),
                     "ray": lambda: ray_stage(texts, settings)}
            order = ("bare", "ray") if r % 2 == 0 else ("ray", "bare")
            got = {side: sides[side]() for side in order}
            b, y = got["bare"], got["ray"]
            # what Ray adds beyond the bare encode: actor start, imports, model load,
            # batches through the object store (a fixed cost, less with more chunks)
            row = {"bare": b["chunks_per_s"], "ray": round(y["chunks_per_s"], 2),
                   "ray_overhead_s": round(y["seconds"] - b["encode_s"], 2)}
            row["ratio"] = round(row["ray"] / row["bare"], 3)
            rounds.append(row)
            print(f"round {r + 1}: bare {default} {row['bare']:.2f} chunks/s, Ray Data "
                  f"{row['ray']:.2f} chunks/s, ratio {row['ratio']:.3f}; Ray took "
                  f"{row['ray_overhead_s']:.1f} s more than the bare encode")
        ratio = statistics.median(g["ratio"] for g in rounds)
        overhead = statistics.median(g["ray_overhead_s"] for g in rounds)
        ray_cps = statistics.median(g["ray"] for g in rounds)
        print(f"Ray Data embed stage ({default}): median ratio Ray / bare {ratio:.3f}; "
              f"median extra {overhead:.1f} s")
        payload["ray_data"] = {"backend": default, "chunks_per_s": ray_cps,
                               "ratio_to_bare": ratio, "overhead_s": overhead,
                               "rounds": rounds}
    save(args.name, payload)
    labels = list(results) + (["Ray Data " + default] if "ray_data" in payload else [])
    speeds = [r["chunks_per_s"] for r in results.values()] + (
        [payload["ray_data"]["chunks_per_s"]] if "ray_data" in payload else [])
    mrrs = [r["mrr"] for r in results.values()] + (
        [results[default]["mrr"]] if "ray_data" in payload else [])
    bar_chart(args.name, f"MiniLM embedding backends, {len(texts)} Python-docs chunks, this CPU",
              labels, {"chunks/s": speeds, "dev-set MRR": mrrs}, "")
    print("default backend:", default, "x torch:", results.get(default, {}).get("ratio_to_torch"))


if __name__ == "__main__":
    main()

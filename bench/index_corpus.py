"""Whole-corpus indexing: `llama-rag index` on all of python3.11-doc, the old default
embedder (torch) against the new one (OpenVINO), one after the other in one run.

Each side is the real command in a fresh process, into a fresh index folder, with
its own Ray (as a user runs it): wall time, chunks, chunks/s. Long (about 6 + 11
minutes on 2 cores): not part of CI.

    python bench/index_corpus.py [--docs /usr/share/doc/python3.11/html] [--sides new,old]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import bar_chart, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"new": {}, "old": {"LLAMA_RAG_MODELS__EMBED_BACKEND": "torch",
                            "LLAMA_RAG_MODELS__EMBED_QUANTIZATION": "none"}}
LABELS = {"new": "new default (openvino)", "old": "old default (torch)"}


def index_once(docs: Path, env: dict[str, str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-index-")) / "index"
    cli = Path(sys.executable).with_name("llama-rag")
    started = time.perf_counter()
    proc = subprocess.run([str(cli), "index", str(docs), "--index-dir", str(out), "--json",
                           "--no-progress"], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"llama-rag index failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    return {"wall_s": round(seconds, 1), "chunks": summary["chunks_embedded"],
            "files": summary["added"], "failed": summary["failed"],
            "chunks_per_s": round(summary["chunks_embedded"] / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    parser.add_argument("--sides", default="new,old")
    args = parser.parse_args()
    results = {}
    for side in args.sides.split(","):
        results[side] = index_once(args.docs, SIDES[side])
        r = results[side]
        print(f"{LABELS[side]:24} {r['wall_s']:7.1f} s  {r['chunks']} chunks from {r['files']} "
              f"files  {r['chunks_per_s']:6.2f} chunks/s", flush=True)
    payload = {"docs": str(args.docs), "sides": results}
    if {"new", "old"} <= set(results):
        payload["speedup"] = round(results["old"]["wall_s"] / results["new"]["wall_s"], 3)
        print(f"speed-up new / old: {payload['speedup']:.2f}x")
    save("index-corpus", payload)
    bar_chart("index-corpus", f"llama-rag index on all of {args.docs.name} docs (wall time)",
              [LABELS[s] for s in results], {"minutes": [r["wall_s"] / 60 for r in
                                                         results.values()]}, "minutes")


if __name__ == "__main__":
    main()

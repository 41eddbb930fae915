"""Answers from documents no rule was written for: every answer path in one run.

Dev corpora of other kinds than the Python docs, each from a Debian package
(`scripts/install-testdata.sh --dev-corpora` installs them), each with >= 30 questions
in `eval/` reworded by hand from the corpus's own FAQ or task pages, with the key facts
a right answer holds:

- git's own manual (AsciiDoc HTML, not Sphinx): `eval/git-docs-qa.jsonl`
- PostgreSQL's manual (DocBook HTML), the SQL, server and data-type chapters:
  `eval/postgresql-docs-qa.jsonl`
- PDF manuals (Valgrind's, DocBook + FOP; bzip2's, PassiveTeX; three more made by
  TeX): `eval/pdf-manuals-qa.jsonl`
- man pages of 39 everyday commands as plain text (`man | col -bx`):
  `eval/man-pages-qa.jsonl`

For each corpus, on the same index and the same questions: the default `/v1/ask`
path for the bundled model (qa.answerer, extractive), the same after `llama-rag tune`
on the corpus (pipelines.tune, run here and timed; its gate may refuse the scorer,
and then the tuned path is the untuned one), the naive extractive baseline (best
word-overlap sentence of the top 3 hits) and the untuned `generate` mode (the same
Answerer's prompt and finish around an in-process vLLM engine of the bundled model,
batched). Prints key-fact coverage, document citation, off-topic refusals, answer
length and latency, and the ratios; writes bench/results/any-corpus.json.

    python bench/any_corpus.py [--corpora git,postgresql,pdf] [--no-generate] [--no-tune]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work"
PG = Path("/usr/share/doc/postgresql-doc-15/html")
PG_PAGES = ["sql-*.html", "app-*.html", "runtime-config-*.html", "datatype*.html",
            "functions-*.html", "ddl-*.html", "backup*.html", "routine-*.html", "wal-*.html",
            "monitoring-*.html", "indexes-*.html", "tutorial-*.html", "auth-*.html",
            "client-authentication*.html", "populate.html", "using-explain.html",
            "upgrading.html", "pgupgrade.html", "transaction-iso.html",
            "continuous-archiving.html", "kernel-resources.html", "explicit-locking.html",
            "server-start.html"]
PDFS = {"valgrind_manual.pdf": "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
        "bzip2-manual.pdf": "/usr/share/doc/bzip2/manual.pdf.gz",
        "nettle.pdf": "/usr/share/doc/nettle-dev/nettle.pdf.gz",
        "libtasn1.pdf": "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
        "fontconfig-user.pdf": "/usr/share/doc/fontconfig/fontconfig-user.pdf.gz"}


def corpus_git(dst: Path) -> None:
    for page in Path("/usr/share/doc/git-doc").glob("*.html"):
        shutil.copy(page, dst / page.name)


def corpus_postgresql(dst: Path) -> None:
    for pattern in PG_PAGES:
        for page in PG.glob(pattern):
            shutil.copy(page, dst / page.name)


def corpus_pdf(dst: Path) -> None:
    for name, src in PDFS.items():
        data = Path(src).read_bytes()
        (dst / name).write_bytes(gzip.decompress(data) if src.endswith(".gz") else data)


MAN_PAGES = ("tar find grep sed ssh scp curl wget cp ls du df sort xargs chmod gzip zip unzip "
             "ps kill tmux less make diff patch head tail cut tr uniq wc ln mv rm mkdir touch "
             "date top free").split()


def corpus_man(dst: Path) -> None:
    for page in MAN_PAGES:
        rendered = subprocess.run(["man", page], capture_output=True, text=True, check=True,
                                  env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"}).stdout
        text = subprocess.run(["col", "-bx"], input=rendered, capture_output=True, text=True,
                              check=True).stdout
        (dst / f"{page}.txt").write_text(text)


CORPORA = {"git": (corpus_git, "git-docs-qa.jsonl"),
           "postgresql": (corpus_postgresql, "postgresql-docs-qa.jsonl"),
           "pdf": (corpus_pdf, "pdf-manuals-qa.jsonl"),
           "man": (corpus_man, "man-pages-qa.jsonl")}


def build_index(name: str) -> Path:
    """The corpus copied from its package and indexed (kept between runs)."""
    make, _ = CORPORA[name]
    corpus, index = WORK / name / "corpus", WORK / name / "index"
    if not (index / "CURRENT").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        make(corpus)
        subprocess.run([str(Path(sys.executable).parent / "llama-rag"), "index", str(corpus),
                        "--index-dir", str(index), "--no-progress"], check=True)
    return index


def generated(items, answerer, settings, llm) -> dict[str, dict]:
    """The generate mode's answer to each question: the Answerer's prompt, one batched
    vLLM call for all of them, the Answerer's finish (refusal, citations)."""
    from vllm import SamplingParams

    from llama_rag.protocol import AskRequest, AskResponse, Usage

    plans, done = {}, {}
    for item in items:
        plan = answerer.prepare(AskRequest(question=item.question), "generate")
        if isinstance(plan, AskResponse):
            done[item.question] = plan.model_dump()
        else:
            plans[item.question] = plan
    started = time.perf_counter()
    outputs = llm.chat([p.messages for p in plans.values()], SamplingParams(
        temperature=0, max_tokens=settings.qa.max_tokens,
        frequency_penalty=settings.qa.frequency_penalty), use_tqdm=False)
    each_ms = (time.perf_counter() - started) * 1000 / max(1, len(plans))
    for (question, plan), out in zip(plans.items(), outputs):
        done[question] = answerer.finish(out.outputs[0].text, plan, Usage(), each_ms).model_dump()
    return done


def tuned(name: str, settings) -> tuple[dict, object | None]:
    """`llama-rag tune` on the corpus's index (a registry of the bench's own): its
    summary (or the gate's refusal) and the published scorer."""
    from indexing.passage_scorer import load_scorer
    from llama_rag.errors import GateRefusedError
    from pipelines.tune import run
    from pipelines.tune_args import TuneArgs

    registry = WORK / name / "adapters"
    shutil.rmtree(registry, ignore_errors=True)
    settings = settings.model_copy(update={"adapters": settings.adapters.model_copy(
        update={"dir": registry})})
    started = time.perf_counter()
    try:
        summary = run(TuneArgs(), settings, echo=lambda m: print(f"[tune {name}] {m}", flush=True))
    except GateRefusedError as refused:
        return {"published": False, "refused": refused.message,
                "seconds": round(time.perf_counter() - started, 1)}, None
    return summary.model_dump(), load_scorer(settings, summary.name)


def run_corpus(name: str, llm, tune: bool) -> dict:
    from indexing.retriever import RetrieverCore
    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy
    from qa.answerer import Answerer
    from qa.evaluation.report import evaluate, load_qa
    from qa.evaluation.targets import local_target

    index = build_index(name)
    settings = load_settings(None, {"index.dir": str(index)})
    apply_offline_policy(settings.models)
    items = load_qa(ROOT / "eval" / CORPORA[name][1])
    core = RetrieverCore(settings)
    searcher, ask = local_target(core, settings)
    ours = evaluate(items, searcher(None), ask)
    result = {"questions": len(items), "ours": ours.model_dump()}
    if tune:
        result["tune"], scorer = tuned(name, settings)
        if scorer is not None:
            _, tuned_ask = local_target(core, settings, scorer)
            result["tuned"] = evaluate(items, searcher(None), tuned_ask).model_dump()
        else:
            result["tuned"] = result["ours"]
    if llm is not None:
        answers = generated(items, Answerer(core, settings), settings, llm)
        result["generate"] = evaluate(items, searcher(None),
                                      lambda q, history=(): answers[q]).model_dump()
    return result


def table(results: dict) -> str:
    def report(r: dict, path: str) -> dict:
        return r["ours" if path == "baseline" else path]

    def g(r: dict, path: str) -> str:
        fs = report(r, path)["facts_baseline" if path == "baseline" else "facts"]
        return fs["key_fact"], fs["cites_document"], fs["median_words"]

    rows = [f"{'corpus':<11} {'path':<22} {'key fact':>8} {'cites doc':>9} {'words':>6} "
            f"{'refused off':>11} {'p50 ms':>7}"]
    for name, r in results.items():
        paths = ["ours"] + (["tuned"] if "tuned" in r else []) + ["baseline"] + (
            ["generate"] if "generate" in r else [])
        for path in paths:
            fact, cites, words = g(r, path)
            off = report(r, path)["refusal_rate_unanswerable"] if path != "baseline" else None
            p50 = report(r, path)["ask_p50_ms"] if path in ("ours", "tuned") else None
            label = {"ours": "default /v1/ask", "tuned": "after llama-rag tune",
                     "baseline": "naive extractive", "generate": "generate (untuned)"}[path]
            rows.append(f"{name:<11} {label:<22} {fact:8.3f} {cites:9.3f} {words or 0:6.0f} "
                        f"{'' if off is None else f'{off:.3f}':>11} "
                        f"{'' if p50 is None else f'{p50:.0f}':>7}")
        base = r["ours"]["facts_baseline"]["key_fact"]
        ours = r["ours"]["facts"]["key_fact"]
        extra = f", generate {r['generate']['facts']['key_fact']:.3f}" if "generate" in r else ""
        rows.append(f"{name:<11} margin over baseline {ours - base:+.3f}{extra}")
        if "tune" in r:
            t = r["tune"]
            said = (f"published, held-out key fact {t['untuned']['key_fact']:.3f} -> "
                    f"{t['tuned']['key_fact']:.3f} ({t['train_pairs']} training pairs)"
                    if t["published"] else "refused by its gate")
            rows.append(f"{name:<11} llama-rag tune: {t['seconds']:.0f} s, {said}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default=",".join(CORPORA))
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "any-corpus.json")
    args = parser.parse_args()
    llm = None
    if not args.no_generate:
        from vllm import LLM

        from llama_rag.config import load_settings
        from llama_rag.engine import engine_kwargs
        from llama_rag.model_files import resolve_llm

        settings = load_settings()
        llm = LLM(model=resolve_llm(settings).path, **engine_kwargs(settings))
    results = {name: run_corpus(name, llm, not args.no_tune) for name in args.corpora.split(",")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"median ask p50 over corpora: "
          f"{statistics.median(r['ours']['ask_p50_ms'] for r in results.values()):.0f} ms")


if __name__ == "__main__":
    main()

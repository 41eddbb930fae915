"""Answer quality: `/v1/ask` with the default settings vs the no-LLM extractive baseline.

Serves the app in-process on loopback over the whole Python docs (Debian's
python3.11-doc, indexed first if `--index-dir` has no published version: about 11
minutes on 2 cores), derives the test split of `llama-rag eval make-set` (pages never
used for tuning), and scores in one run:

- ours: `POST /v1/ask` as a user sends it (the server's default `qa.answer_mode`);
- generate: the same route with `answer_mode: generate` (the LLM writes the answer),
  on the first `--generate-n` questions only (tens of seconds each on this CPU);
- baseline: the sentence of the top three hits sharing most words with the question.

Prints token-F1, ROUGE-L, citations, support, refusals and latency, and the ratio of
our token-F1 to the baseline's; writes bench/results/answers.{json,png}.

    python bench/answers.py [--index-dir DIR] [--n 120] [--generate-n 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import RESULTS, serve_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path("/usr/share/doc/python3.11/html")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=ROOT / ".bench" / "pydocs-index")
    parser.add_argument("--n", type=int, default=120, help="answerable test questions")
    parser.add_argument("--unanswerable", type=int, default=20, help="off-topic questions")
    parser.add_argument("--generate-n", type=int, default=20,
                        help="questions also answered by the LLM (answer_mode generate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from indexing.store import IndexStore
    from llama_rag.config import load_settings
    from llama_rag.evalset import make_set
    from llama_rag.evaluate import (QAItem, compare_answers, evaluate, http_target,
                                    report_lines)
    from llama_rag.models import apply_offline_policy, resolve_answer_mode

    if not IndexStore(args.index_dir).current():
        subprocess.run([str(Path(sys.executable).parent / "llama-rag"), "index", str(DOCS),
                        "--index-dir", str(args.index_dir), "--no-progress"], check=True)
    items = [QAItem.model_validate(i.model_dump())
             for i in make_set(DOCS, args.n, args.seed, "test", args.unanswerable)]
    settings = load_settings(None, {"index.dir": args.index_dir})
    apply_offline_policy(settings.models)
    default_mode = resolve_answer_mode(settings).qa.answer_mode
    url = serve_app(settings, "bench-answers")
    searcher, asker = http_target(url, None, None, answers=True)
    reports = {f"ours (default: {default_mode})": evaluate(items, searcher(None), asker(None))}
    subset = [i for i in items if i.reference][: args.generate_n] + \
        [i for i in items if not i.sources][: max(1, args.generate_n // 4)]
    reports[f"generate ({len(subset)} questions)"] = evaluate(subset, searcher(None),
                                                              asker("generate"))
    title = (f"/v1/ask answers on the Python docs test split ({len(items)} questions, "
             "whole python3.11-doc index) vs the extractive baseline")
    table, files = compare_answers(reports, RESULTS / "answers", title)
    for label, report in reports.items():
        print(f"== {label}")
        print("\n".join(report_lines(report)))
    print(table)
    ours = next(iter(reports.values()))
    print(f"ours / baseline token-F1: {ours.answers.token_f1:.3f} / "
          f"{ours.baseline.token_f1:.3f} = {ours.f1_vs_baseline:.2f}x")
    print("wrote", ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()

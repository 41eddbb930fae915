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

Then follow-ups (`make-set --followups`: a question about one API entry, then "And
what does write() do?" about a sibling): retrieval hit@5 and MRR of the follow-up
with the standalone query of qa.conversation (ours), the previous question
and the follow-up concatenated, the follow-up alone, and a rewrite by the served
LLM; writes bench/results/follow-ups.{json,png}.

    python bench/answers.py [--index-dir DIR] [--n 120] [--generate-n 20] [--followups 30]
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
    parser.add_argument("--followups", type=int, default=30, help="two-turn conversations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from indexing.store import IndexStore
    from llama_rag.config import load_settings
    from qa.evaluation.sets import make_set
    from qa.evaluation.charts import compare_answers
    from qa.evaluation.report import QAItem, evaluate, report_lines
    from qa.evaluation.targets import http_target
    from llama_rag.model_files import apply_offline_policy
    from qa.answerer import resolve_answer_mode

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
    follow_ups(url, settings, make_set(DOCS, 0, args.seed, "test", 0, followups=args.followups))


REWRITE = ("Rewrite the last question of this conversation as one standalone question that "
           "names what it is about. Reply with the question only.")


def follow_ups(url: str, settings, items) -> None:
    """hit@5 / MRR of each way to turn a follow-up into a retrieval query, same server."""
    import httpx

    from llama_rag.protocol import Turn
    from qa.conversation import standalone
    from qa.evaluation.report import hit_at, mrr, rank_of_first_match
    from bench.report import bar_chart, save

    http = httpx.Client(base_url=url, timeout=300)

    def rank(query: str, item) -> int | None:
        hits = http.post("/v1/search", json={"query": query, "k": 5}).json()["hits"]
        return rank_of_first_match([h["source"] for h in hits], item.sources)

    def llm_rewrite(item) -> str:
        messages = [{"role": "system", "content": REWRITE},
                    {"role": "user", "content": f"Earlier question: {item.turns[0]}\n"
                                                f"Last question: {item.question}"}]
        body = http.post("/v1/chat/completions", json={
            "model": settings.llm.model_id, "messages": messages, "max_tokens": 48,
            "temperature": 0}).json()
        return body["choices"][0]["message"]["content"].strip() or item.question

    ways = {"ours (rule)":
            lambda i: standalone(i.question, [Turn(role="user", content=i.turns[0])]),
            "previous + follow-up": lambda i: f"{i.turns[0]} {i.question}",
            "follow-up alone": lambda i: i.question,
            "LLM rewrite": llm_rewrite}
    ranks = {name: [rank(way(i), i) for i in items] for name, way in ways.items()}
    figures = {name: {"hit_at_5": hit_at(rs, 5), "mrr": mrr(rs)} for name, rs in ranks.items()}
    ours, alone = next(iter(figures.values())), figures["follow-up alone"]
    print(f"== follow-ups ({len(items)} two-turn conversations, test split)")
    for name, f in figures.items():
        print(f"{name:<22} hit@5 {f['hit_at_5']:.3f}  MRR {f['mrr']:.3f}")
    print(f"ours - alone hit@5: {ours['hit_at_5'] - alone['hit_at_5']:+.3f}")
    save("follow-ups", {"questions": len(items), "figures": figures})
    bar_chart("follow-ups", f"Follow-up retrieval, {len(items)} conversations",
              list(figures), {m: [f[m] for f in figures.values()] for m in ("hit_at_5", "mrr")},
              "share")


if __name__ == "__main__":
    main()

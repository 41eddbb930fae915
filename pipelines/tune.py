"""Tune the answer engine on the user's own corpus: a passage scorer (cross-encoder from
the bundled MiniLM) trained on pairs the corpus's structure gives, published to the
adapter registry only through a gate.

    ray job submit --working-dir . -- python -m pipelines.tune --index-dir indexes/docs

Steps: read the index's published chunks; derive (question, answering passage,
passages that do not answer) from its FAQ entries, title lines and headings
(qa.training_pairs), the negatives from what the retriever returns for the question;
split by document; train the cross-encoder as a Ray task (``--cpus``); then ask the
held-out documents' questions through qa.answerer with and without the scorer and
publish it only when it holds the key fact of more answers (by ``--min-gain``).
Serve it with ``qa.passage_scorer: NAME``. ``llama-rag tune`` runs the same code.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from llama_rag.adapters import AdapterStore, Manifest, base_ref, check_name
from llama_rag.commands import stdout_for_json
from llama_rag.config import Settings, load_settings
from llama_rag.errors import GateRefusedError, InvalidInputError
from indexing.passage_scorer import METHOD
from pipelines.tune_args import TuneArgs, options
from qa.training_pairs import ChunkText, PassagePair, derive, split



class GateFigures(BaseModel):
    key_fact: float
    answer_f1: float | None
    answered: int


class TuneSummary(BaseModel):
    name: str
    version: str | None
    published: bool
    pairs: int
    train_pairs: int
    held_out_questions: int
    kinds: dict[str, int]
    untuned: GateFigures
    tuned: GateFigures
    reasons: list[str] = []
    derive_s: float
    train_s: float
    gate_s: float
    seconds: float


def index_chunks(settings: Settings, collection: str | None) -> list[ChunkText]:
    """The published version's chunks, each marked when it opens its section."""
    from indexing.store import IndexStore

    store = IndexStore(settings.index.dir, settings.index.cache_dir).collection(collection)
    if not store.exists():
        raise InvalidInputError(f"no index in {store}: build it with `llama-rag index`",
                                param="index-dir")
    rows = store.open().chunks.select(["source", "heading", "text", "doc_id"]).to_pylist()
    chunks, last_heading = [], {}
    for row in rows:
        heading = row["heading"] or []
        first = last_heading.get(row["doc_id"]) != heading
        last_heading[row["doc_id"]] = heading
        chunks.append(ChunkText(source=row["source"], heading=heading, text=row["text"],
                                first_of_section=first))
    return chunks


def held_out_items(pairs: list[PassagePair], chunks: list[ChunkText], limit: int, seed: int):
    """The held-out pairs as QA items: the passage as reference, its rarest words as key
    facts (qa.evaluation.sets_any)."""
    from indexing.text import content_words
    from qa.evaluation.report import QAItem
    from qa.evaluation.sets import EvalItem
    from qa.evaluation.sets_any import key_facts

    frequency: Counter = Counter()
    for chunk in chunks:
        frequency.update(content_words(chunk.text))
    picked = random.Random(seed).sample(pairs, min(limit, len(pairs)))
    items = []
    for pair in picked:
        item = EvalItem(question=pair.question, reference=pair.positive, sources=[pair.source])
        facts = key_facts(item, frequency)
        if facts:
            items.append(QAItem(question=pair.question, reference=pair.positive,
                                sources=[pair.source], key_facts=facts, kind=pair.kind))
    return items


def train_scorer(pairs: list[dict[str, Any]], base_path: str, args: dict[str, Any]
                 ) -> dict[str, bytes]:
    """Train the cross-encoder (a Ray task's body): the saved model's files."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.sentence_transformer.readers import InputExample
    from torch.utils.data import DataLoader

    from indexing.passage_scorer import MAX_LENGTH

    torch.set_num_threads(args["cpus"])
    torch.manual_seed(args["seed"])
    rng = random.Random(args["seed"])
    examples = []
    for pair in pairs:
        examples.append(InputExample(texts=[pair["question"], pair["positive"]], label=1.0))
        for negative in rng.sample(pair["negatives"], min(args["negatives"], len(pair["negatives"]))):
            examples.append(InputExample(texts=[pair["question"], negative], label=0.0))
    model = CrossEncoder(base_path, num_labels=1, max_length=MAX_LENGTH, device="cpu",
                         local_files_only=True)
    batches = DataLoader(examples, batch_size=args["batch_size"], shuffle=True,
                         generator=torch.Generator().manual_seed(args["seed"]))
    model.old_fit(train_dataloader=batches, epochs=args["epochs"],
                  warmup_steps=max(1, len(batches) // 10), show_progress_bar=False,
                  optimizer_params={"lr": args["learning_rate"]})
    out = Path(tempfile.mkdtemp(prefix="llama-rag-scorer-"))
    try:
        model.save(str(out))
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _train_on_ray(train: list[PassagePair], base_path: str, args: TuneArgs,
                  settings: Settings) -> Path:
    from llama_rag.ray_runtime import ensure_ray

    ensure_ray(settings.ray.num_cpus, dashboard=False)
    import ray

    task = ray.remote(num_cpus=args.cpus, max_retries=1)(train_scorer)
    files = ray.get(task.remote([p.model_dump() for p in train], base_path, args.model_dump()))
    local = Path(tempfile.mkdtemp(prefix="llama-rag-scorer-"))
    for name, data in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    return local


def gate_figures(report) -> GateFigures:
    return GateFigures(key_fact=report.facts.key_fact if report.facts else 0.0,
                       answer_f1=report.answers.token_f1 if report.answers else None,
                       answered=report.facts.answered if report.facts else 0)


def decide(untuned: GateFigures, tuned: GateFigures, min_gain: float) -> list[str]:
    """Why the tuned scorer must not be published (empty: publish)."""
    gain = tuned.key_fact - untuned.key_fact
    if gain <= 0 or gain < min_gain:
        return [f"on the held-out documents' questions the tuned engine holds the key fact "
                f"for {tuned.key_fact:.3f}, the untuned one for {untuned.key_fact:.3f} (gain "
                f"{gain:+.3f}; it must be positive and at least --min-gain {min_gain})"]
    return []


def run(args: TuneArgs, settings: Settings, echo: Callable[[str], None] = print) -> TuneSummary:
    """Derive, train, gate, publish."""
    from indexing.passage_scorer import CrossEncoderScorer
    from indexing.retriever import RetrieverCore
    from llama_rag.model_files import embedder_model
    from llama_rag.protocol import SearchRequest
    from qa.evaluation.report import evaluate
    from qa.evaluation.targets import local_target

    check_name(args.name)
    started = time.perf_counter()
    chunks = index_chunks(settings, args.collection)
    core = RetrieverCore(settings)
    order = list(chunks)
    random.Random(args.seed).shuffle(order)  # a cap on pairs samples every document
    pairs = derive(order, lambda q: core.search(SearchRequest(
        query=q, k=settings.qa.k, collection=args.collection)).hits, limit=args.max_pairs)
    train, test = split(pairs, args.seed, args.held_out)
    items = held_out_items(test, chunks, args.max_held_out, args.seed)
    if len(train) < 10 or len(items) < 5:
        raise InvalidInputError(
            f"the index holds too little structure to tune on: {len(pairs)} pairs (FAQ "
            f"entries, titles, headings with text under them), {len(train)} to train on and "
            f"{len(items)} held-out questions (need 10 and 5)", param="index-dir")
    derive_s = time.perf_counter() - started
    echo(f"{len(pairs)} pairs from {len(chunks)} chunks: {len(train)} to train on, "
         f"{len(items)} held-out questions ({derive_s:.0f} s)")
    base = embedder_model(settings)
    files = _train_on_ray(train, base.path, args, settings)
    train_s = time.perf_counter() - started - derive_s
    echo(f"trained in {train_s:.0f} s; gating on the held-out questions")
    try:
        searcher, untuned_ask = local_target(core, settings, None, args.collection)
        untuned = gate_figures(evaluate(items, searcher(None), untuned_ask))
        _, tuned_ask = local_target(core, settings, CrossEncoderScorer(files, args.cpus),
                                    args.collection)
        tuned = gate_figures(evaluate(items, searcher(None), tuned_ask))
        gate_s = time.perf_counter() - started - derive_s - train_s
        reasons = decide(untuned, tuned, args.min_gain)
        store = AdapterStore.of(settings.adapters)
        summary = dict(name=args.name, pairs=len(pairs), train_pairs=len(train),
                       held_out_questions=len(items),
                       kinds=dict(Counter(p.kind for p in pairs)), untuned=untuned,
                       tuned=tuned, reasons=reasons, derive_s=round(derive_s, 1),
                       train_s=round(train_s, 1), gate_s=round(gate_s, 1))
        if reasons:
            raise GateRefusedError(f"gate refused passage scorer {args.name}: {reasons[0]}; "
                                   f"CURRENT stays {store.current(args.name) or 'unset'}")
        manifest = store.publish(files, Manifest(
            name=args.name, method=METHOD, task="answer",
            base_model=base_ref(base.path, base.name),
            data={"index": str(settings.index.dir), "collection": args.collection,
                  "pairs": len(pairs), "train_pairs": len(train),
                  "held_out_questions": len(items)},
            hyperparameters=args.model_dump(mode="json", exclude={"json_output", "index_dir"}),
            metrics={"untuned": untuned.model_dump(), "tuned": tuned.model_dump()}))
    finally:
        shutil.rmtree(files, ignore_errors=True)
    return TuneSummary(**summary, version=manifest.version, published=True,
                       seconds=round(time.perf_counter() - started, 1))


def run_from_cli(config_path: Path | None, index_dir: str | None, **kwargs: Any) -> None:
    """Tune the answer engine on an index's corpus: a passage scorer trained on pairs
    from the documents' own structure, published only if it beats the untuned engine on
    held-out documents."""
    from llama_rag.model_files import apply_offline_policy

    settings = load_settings(config_path, {"index.dir": index_dir} if index_dir else {})
    apply_offline_policy(settings.models)
    args = TuneArgs(index_dir=index_dir, **kwargs)
    out = stdout_for_json() if args.json_output else None  # Ray's workers print on fd 1
    summary = run(args, settings, echo=lambda m: click.echo(m, err=True))
    if args.json_output:
        click.echo(summary.model_dump_json(indent=2), file=out)
        return
    click.echo(f"published {summary.name} version {summary.version}: key fact "
               f"{summary.untuned.key_fact:.3f} -> {summary.tuned.key_fact:.3f} on "
               f"{summary.held_out_questions} held-out questions ({summary.seconds:.0f} s); "
               f"serve it with qa.passage_scorer: {summary.name}")


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.tune`: the job's own flags (those of `llama-rag tune`)."""
    from llama_rag.commands import job_entry_point

    job_entry_point("tune", options, run_from_cli, argv)


if __name__ == "__main__":
    main()

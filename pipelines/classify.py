"""Bulk classification: every input row labelled by the LLaMA model, resumable, none lost.

    ray job submit --working-dir . -- python -m pipelines.classify \\
        --input data/*.csv --text-column text --labels sports,politics,tech --output out/

The driver checks every argument before any work (exit 2 with the reason), reads
the inputs with stable ids, skips ids already in ``--output`` (resume), and streams
the rest through a Ray Data stage of vLLM engines (pipelines.classify_llm), writing
each finished batch as an atomic part. ``llama-rag classify`` runs the same code.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
from pydantic import BaseModel

from llama_rag.config import Settings, groups_flag, load_settings
from llama_rag.errors import InvalidInputError
from llama_rag.adapters import Adapter
from llama_rag.prompts import LabelSet, PromptSpec
from pipelines import classify_io, row_job
from pipelines.classify_args import ClassifyArgs, options
from pipelines.classify_labels import load_examples, load_labels
from pipelines.classify_metrics import Metrics, MultiLabelMetrics, metrics, multilabel_metrics
from pipelines.finetune_data import split_labels

PROGRESS_EVERY_S = 10


class AdapterUsed(BaseModel):
    name: str
    version: str
    method: str


class Summary(BaseModel):
    output: str
    adapter: AdapterUsed | None = None
    input: int
    labeled: int
    errors: int
    skipped_already_done: int
    processed_this_run: int
    seconds: float
    rows_per_s: float
    startup_s: float | None = None
    steady_rows_per_s: float | None = None
    truncated: int
    unmapped: int
    label_distribution: dict[str, int]
    metrics: Metrics | None = None
    multi_label_metrics: MultiLabelMetrics | None = None  # a multi-label adapter's
    complete: bool
    trained: dict[str, Any] | None = None  # --train: what `finetune --method auto` published


class Prepared(BaseModel):
    inputs: row_job.Inputs
    spec: PromptSpec
    job: dict[str, Any]
    adapter: Adapter | None = None


def _adapter(args: ClassifyArgs, settings: Settings) -> Adapter | None:
    """The published adapter --adapter names, checked against the configured models."""
    if not args.adapter:
        return None
    from llama_rag.adapters import AdapterStore, base_ref, check_base
    from indexing.embedder import resolve_embedder
    from llama_rag.model_files import resolve_llm

    adapter = AdapterStore.of(settings.adapters).open(args.adapter)
    m = adapter.manifest
    if m.task != "classify" or m.prompt is None:
        raise InvalidInputError(f"--adapter {m.name} was trained for task {m.task}, not "
                                "classify", param="adapter")
    if m.method == "embedding-head":
        base = resolve_embedder(settings).base()
    else:
        llm = resolve_llm(settings)
        base = base_ref(llm.path, llm.name)
    check_base(m, base)
    for flag, value in (("--examples", args.examples), ("--context-index", args.context_index)):
        if value:
            raise InvalidInputError(f"{flag} changes the prompt the adapter {m.name} was trained "
                                    "on: leave it out with --adapter", param=flag[2:])
    if m.method == "llm-yes-no" and args.via_serve:
        raise InvalidInputError(f"--adapter {m.name} asks the LLM one yes/no question a label "
                                "in the job, not via --via-serve", param="via-serve")
    if m.method == "embedding-head" and args.via_serve:
        raise InvalidInputError(f"--adapter {m.name} is an embedding head: it runs in the job, "
                                "not via --via-serve", param="via-serve")
    if m.head_weight is not None and args.via_serve:
        raise InvalidInputError(f"--adapter {m.name} is an ensemble of a LoRA adapter and an "
                                "embedding head: it runs in the job, not via --via-serve",
                                param="via-serve")
    if m.head_weight is not None and args.mode != "choice":
        raise InvalidInputError(f"--adapter {m.name} is an ensemble: it blends label "
                                "probabilities, which only --mode choice gives", param="mode")
    return adapter


def _labels(args: ClassifyArgs, adapter: Adapter | None) -> LabelSet:
    """The job's labels; with an adapter, the ones it was trained on (any given must match)."""
    if adapter is None:
        return load_labels(args.labels, args.labels_file)
    trained = adapter.manifest.prompt.labels
    if args.labels or args.labels_file:
        given = load_labels(args.labels, args.labels_file)
        if set(given.labels) != set(trained.labels):
            raise InvalidInputError(
                f"--adapter {adapter.manifest.name} was trained on labels "
                f"{', '.join(trained.labels)}, not {', '.join(given.labels)}", param="labels")
    return trained


def prepare(args: ClassifyArgs, settings: Settings) -> Prepared:
    """Every check that can fail, before any work: raises InvalidInputError (exit 2)."""
    if args.class_weight != "none" and not args.train:
        raise InvalidInputError("--class-weight weighs labels in training: it goes with "
                                "--train", param="class-weight")
    if args.multi_label and args.adapter and not args.train:
        raise InvalidInputError("--adapter knows whether it labels one or several a row: "
                                "leave --multi-label out", param="multi-label")
    if args.multi_label and not args.adapter:  # the LLM's yes/no per label
        _check_yes_no(args)
    adapter = _adapter(args, settings)
    labels = _labels(args, adapter)
    examples = load_examples(args.examples, labels)
    if args.examples_k and not examples:
        raise InvalidInputError("--examples-k picks from --examples: give the examples file",
                                param="examples-k")
    found = row_job.inputs(args)
    if args.context_index:
        from indexing.store import IndexStore  # a folder or a URI, as index.dir accepts

        if IndexStore(args.context_index, settings.index.cache_dir).current() is None:
            raise InvalidInputError(f"--context-index {args.context_index}: no published index "
                                    "there (run llama-rag index first)", param="context-index")
    try:
        groups_flag(args.context_groups, "--context-groups")
    except ValueError as exc:  # before any work, not inside the job's retrieval stage
        raise InvalidInputError(str(exc), param="context-groups") from None
    if args.output_format not in ("parquet", "jsonl"):
        raise InvalidInputError("--format must be parquet or jsonl", param="format")
    spec = PromptSpec(labels=labels, instructions=args.instructions, examples=examples,
                      max_text_tokens=args.max_text_tokens, calibrate=args.calibrate)
    if adapter is not None:
        spec = adapter.manifest.prompt  # the very prompt it was trained on, not calibrated
    job = {"inputs": classify_io.fingerprint(found.files), "text_column": args.text_column,
           "id_column": args.id_column, "gold_column": args.gold_column,
           "prompt": classify_io.short_hash(spec.model_dump()), "mode": args.mode,
           "labels": labels.labels, "model": settings.models.llm or "bundled:smollm2",
           "context_index": str(args.context_index) if args.context_index else None,
           "context_groups": args.context_groups,
           "examples_k": args.examples_k,
           "adapter": f"{adapter.manifest.name}@{adapter.manifest.version}" if adapter else None,
           **({"multi_label": args.label_separator} if args.multi_label else {})}
    classify_io.Output(args.output).check_job(job)
    return Prepared(inputs=found, spec=spec, job=job, adapter=adapter)


def _check_yes_no(args: ClassifyArgs) -> None:
    """What the LLM's multi-label path (one yes/no question a label) cannot take."""
    if not args.label_separator.strip():
        raise InvalidInputError("--label-separator is empty", param="label-separator")
    for flag, given in (("--examples", args.examples), ("--context-index", args.context_index),
                        ("--via-serve", args.via_serve), ("--mode generate", args.mode == "generate")):
        if given:
            raise InvalidInputError(f"--multi-label asks the LLM one yes/no question a label "
                                    f"in the job: {flag} does not apply", param="multi-label")


def _yes_no(prep: Prepared, args: ClassifyArgs) -> bool:
    """The LLM labels several a row: a published llm-yes-no version, or --multi-label alone."""
    if prep.adapter is not None:
        return prep.adapter.manifest.method == "llm-yes-no"
    return args.multi_label


def _stage(ds, prep: Prepared, args: ClassifyArgs, settings: Settings):
    """The Ray Data LLM stage: vLLM actors, or HTTP calls to a running deployment."""
    from llama_rag.engine import actor_resources, engine_env

    if args.context_index:
        from pipelines.classify_context import Retrieve

        ds = ds.map_batches(Retrieve, fn_constructor_kwargs={
            "settings": settings.model_copy(update={"index": settings.index.model_copy(
                update={"dir": args.context_index})}),
            "groups": groups_flag(args.context_groups)},
            batch_size=args.batch_size, concurrency=1, num_cpus=0.5)
    adapter = prep.adapter
    if adapter is not None and adapter.manifest.method == "embedding-head":
        from indexing.embedder import resolve_embedder
        from pipelines.embedding_head import HEAD_FILE, HeadClassifier

        return ds.map_batches(HeadClassifier, fn_constructor_kwargs={
            "ref": resolve_embedder(settings), "settings": settings,
            "head_path": str(adapter.path / HEAD_FILE), "labels": prep.spec.labels.labels,
            "separator": adapter.manifest.multi_label_separator},
            batch_size=args.batch_size, concurrency=args.concurrency,
            num_cpus=settings.ingest.embed_num_cpus)
    if _yes_no(prep, args):
        from pipelines.multilabel_llm import VLLMYesNo, load_thresholds, stage_kwargs

        bars = load_thresholds(adapter.path, prep.spec.labels.labels) if adapter else None
        return ds.map_batches(VLLMYesNo, fn_constructor_kwargs=stage_kwargs(
            prep.spec, settings, _separator(prep, args), bars), batch_size=args.batch_size,
            concurrency=args.concurrency, **actor_resources(settings))
    if adapter is not None and adapter.manifest.head_weight is not None:
        from indexing.embedder import resolve_embedder
        from pipelines.embedding_head import HEAD_FILE, HeadScores

        ds = ds.map_batches(HeadScores, fn_constructor_kwargs={
            "ref": resolve_embedder(settings), "settings": settings,
            "head_path": str(adapter.path / HEAD_FILE), "labels": prep.spec.labels.labels},
            batch_size=args.batch_size, concurrency=1, num_cpus=0.5)
    if args.examples_k:
        from pipelines.classify_examples import NearestExamples

        ds = ds.map_batches(NearestExamples, fn_constructor_kwargs={
            "settings": settings, "examples": prep.spec.examples, "k": args.examples_k},
            batch_size=args.batch_size, concurrency=1, num_cpus=0.5)
    if args.via_serve:
        from pipelines.classify_serve import ServeClassifier

        model = settings.llm.model_id + (f":{adapter.manifest.name}" if adapter else "")
        return ds.map_batches(ServeClassifier, fn_constructor_kwargs={
            "url": args.via_serve, "model": model, "spec": prep.spec,
            "mode": args.mode}, batch_size=args.batch_size, concurrency=args.concurrency,
            num_cpus=0.25)
    from pipelines.adapter_merge import engine_for
    from pipelines.classify_llm import VLLMClassifier

    model_path, kwargs, lora = engine_for(adapter, settings)
    return ds.map_batches(VLLMClassifier, fn_constructor_kwargs={
        "model_path": model_path, "engine_kwargs": kwargs,
        "env": engine_env(settings), "spec": prep.spec, "mode": args.mode, "lora": lora,
        "examples_k": args.examples_k,
        "head_weight": adapter.manifest.head_weight if adapter is not None else None},
        batch_size=args.batch_size, concurrency=args.concurrency, **actor_resources(settings))


def run(args: ClassifyArgs, settings: Settings, echo=print) -> Summary:
    trained = None
    if args.train:
        from pipelines.classify_train import train_for

        row_job.inputs(args)  # a wrong input column fails now, not after the training
        name, trained = train_for(args, settings, echo)
        args = args.model_copy(update={"adapter": name})
    prep = prepare(args, settings)
    out = classify_io.Output(args.output)
    with out.lock():  # one driver per output folder
        summary = _classify(prep, out, args, settings, echo)
    if trained:
        summary.trained = trained
        (out.root / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def _write_batch(result: pa.Table, out: classify_io.Output, args: ClassifyArgs, rows_done) -> int:
    """Stage 3, per labeled batch: unmapped outputs to errors, the rest as one atomic part;
    returns the rows handled."""
    labels = result.column("label").to_pylist()
    unmapped = [i for i, label in enumerate(labels) if label is None]
    if unmapped:
        raw, ids = result.column("raw").to_pylist(), result.column("id").to_pylist()
        out.write_errors([{"id": ids[i], "reason": f"unmapped model output: {raw[i][:100]!r}"}
                          for i in unmapped])
        result = result.filter(pa.array([label is not None for label in labels]))
        rows_done.inc(len(unmapped), tags={"outcome": "failed"})
    out.write_results(result.select(classify_io.RESULT_SCHEMA.names).cast(classify_io.RESULT_SCHEMA),
                      args.output_format)
    if result.num_rows:
        rows_done.inc(result.num_rows, tags={"outcome": "labeled"})
    return result.num_rows + len(unmapped)


class _Progress(BaseModel):
    processed: int = 0
    first_at: float | None = None  # engines started and the first batch through
    first_rows: int = 0


def _label(pending: row_job.Pending, prep: Prepared, out: classify_io.Output, args: ClassifyArgs,
           settings: Settings, started: float, echo) -> _Progress:
    """Stage 2: the rows through the Ray Data LLM stage, written batch by batch."""
    from llama_rag.ray_runtime import ensure_ray

    ensure_ray(settings.ray.num_cpus)
    import ray

    from llama_rag.telemetry import classify_rows

    rows_done = classify_rows()
    if pending.failed:
        rows_done.inc(pending.failed, tags={"outcome": "failed"})
    ds = ray.data.from_items(pending.rows, override_num_blocks=max(
        1, min(len(pending.rows) // args.batch_size, 200)))
    progress, last = _Progress(), time.perf_counter()
    for result in _stage(ds, prep, args, settings).iter_batches(batch_size=None,
                                                                batch_format="pyarrow"):
        if progress.first_at is None:
            progress.first_at, progress.first_rows = time.perf_counter(), result.num_rows
        progress.processed += _write_batch(result, out, args, rows_done)
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            echo(f"classified {progress.processed}/{len(pending.rows)} rows "
                 f"({progress.processed / (last - started):.1f} rows/s)")
    return progress


def _classify(prep: Prepared, out: classify_io.Output, args: ClassifyArgs, settings: Settings,
              echo) -> Summary:
    out.start(prep.job)
    started = time.perf_counter()
    pending = row_job.pending(prep.inputs, out, args)
    how = "the LLM's yes/no per label" if _yes_no(prep, args) and not prep.adapter \
        else f"{args.mode} mode"
    if prep.adapter:
        m = prep.adapter.manifest
        how = f"adapter {m.name} ({m.method}" + (
            f" with an embedding head, weight {m.head_weight:g})" if m.head_weight is not None
            else ", multi-label)" if m.multi_label_separator else ")")
    echo(f"{pending.total} input rows: {pending.skipped} already done, {len(pending.rows)} to "
         f"classify ({how}, {len(prep.spec.labels.labels)} labels)")
    progress = (_label(pending, prep, out, args, settings, started, echo) if pending.rows
                else _Progress())
    ended = time.perf_counter()
    first_at, labeled_after = progress.first_at, progress.processed - progress.first_rows
    steady = (labeled_after / (ended - first_at)
              if first_at and labeled_after > 0 and ended > first_at else None)
    summary = _summarise(out, args, pending.total, pending.skipped, progress.processed,
                         ended - started, _separator(prep, args))
    if prep.adapter is not None:
        m = prep.adapter.manifest
        summary.adapter = AdapterUsed(name=m.name, version=m.version, method=m.method)
    summary.startup_s = round(first_at - started, 2) if first_at else None
    summary.steady_rows_per_s = round(steady, 2) if steady else None
    (out.root / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def _separator(prep: Prepared, args: ClassifyArgs) -> str | None:
    """What joins a row's labels: a multi-label adapter's separator, or --label-separator
    for the LLM's multi-label path (None: one label a row)."""
    if prep.adapter is not None:
        return prep.adapter.manifest.multi_label_separator
    return args.label_separator if args.multi_label else None


def _summarise(out: classify_io.Output, args: ClassifyArgs, total: int, skipped: int, processed: int,
               seconds: float, separator: str | None = None) -> Summary:
    error_records = out.merge_errors()
    errors = len(error_records)
    results = out.results()
    labels = results.column("label").to_pylist()
    gold = results.column("gold").to_pylist()
    summary = Summary(
        output=str(out.root), input=total, labeled=results.num_rows, errors=errors,
        skipped_already_done=skipped, processed_this_run=processed, seconds=round(seconds, 2),
        rows_per_s=round(processed / seconds, 2) if seconds else 0.0,
        truncated=sum(bool(t) for t in results.column("truncated").to_pylist()),
        unmapped=sum(r["reason"].startswith("unmapped model output") for r in error_records),
        label_distribution=dict(Counter(
            [t for x in labels for t in split_labels(x, separator)] if separator else labels
        ).most_common()),
        metrics=metrics(labels, gold) if args.gold_column and not separator else None,
        multi_label_metrics=multilabel_metrics(labels, gold, separator)
        if args.gold_column and separator else None,
        complete=total == results.num_rows + errors)
    return summary


def run_from_cli(config_path: Path | None, input_: str, **kwargs: Any) -> None:
    """Label every row of csv/jsonl/parquet files with the LLM (resumable: re-run the
    same command to finish; every row ends in the output or errors.jsonl)."""
    settings = load_settings(config_path)
    from llama_rag.model_files import apply_offline_policy

    apply_offline_policy(settings.models)
    args = ClassifyArgs(input=input_, **kwargs)
    summary = run(args, settings, echo=lambda m: click.echo(m, err=False))
    click.echo(summary.model_dump_json(indent=2))
    if not summary.complete:
        raise click.ClickException(
            f"input ({summary.input}) != labeled ({summary.labeled}) + errors "
            f"({summary.errors}); re-run the same command to finish")


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.classify`: the job's own flags (those of `llama-rag classify`),
    errors mapped as the CLI maps them (llama_rag.commands)."""
    from llama_rag.commands import job_entry_point

    job_entry_point("classify", options, run_from_cli, argv)


if __name__ == "__main__":
    main()

"""Structured extraction: one JSON object per input row, valid against the user's schema,
resumable, none lost.

    ray job submit --working-dir . -- python -m pipelines.extract \\
        --input data/*.csv --text-column text --schema invoice.json --output out/

The same shape as the classification job (pipelines.classify): every argument is
checked before any work (exit 2 with the reason), rows get stable ids, ids already in
``--output`` are skipped (resume), and the rest stream through a Ray Data stage of
vLLM engines under guided decoding (pipelines.extract_llm), each finished batch
written as an atomic part. An output that fails the schema goes to ``errors.jsonl``
with the reason and the raw text. ``llama-rag extract`` runs the same code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
from pydantic import BaseModel

from llama_rag.adapters import Adapter
from llama_rag.config import Settings, load_settings
from llama_rag.errors import InvalidInputError
from llama_rag.prompts import ExtractSpec
from pipelines import classify_io, row_job
from pipelines.extract_args import ExtractArgs, options
from pipelines.extract_metrics import ExtractMetrics, extract_metrics
from pipelines.extract_schema import Checker, fields, load_schema, parse_gold

PROGRESS_EVERY_S = 10
RESULT_SCHEMA = pa.schema([("id", pa.string()), ("data", pa.string()),
                           ("truncated", pa.bool_()), ("gold", pa.string())])


class Summary(BaseModel):
    output: str
    adapter: str | None = None  # NAME@VERSION
    fields: list[str]
    input: int
    extracted: int
    errors: int
    failed_schema: int  # outputs that were not a valid object (in errors.jsonl, with raw)
    skipped_already_done: int
    processed_this_run: int
    seconds: float
    rows_per_s: float
    startup_s: float | None = None
    truncated: int
    metrics: ExtractMetrics | None = None
    gold_unreadable: int = 0  # gold cells that are no JSON object (not scored)
    complete: bool


class Prepared(BaseModel):
    inputs: row_job.Inputs
    spec: ExtractSpec
    job: dict[str, Any]
    adapter: Adapter | None = None


def _adapter(args: ExtractArgs, settings: Settings) -> Adapter | None:
    if not args.adapter:
        return None
    from llama_rag.adapters import AdapterStore, base_ref, check_base
    from llama_rag.model_files import resolve_llm

    adapter = AdapterStore.of(settings.adapters).open(args.adapter)
    m = adapter.manifest
    if m.task != "extract" or m.extraction is None:
        raise InvalidInputError(f"--adapter {m.name} was trained for task {m.task}, not "
                                "extract", param="adapter")
    llm = resolve_llm(settings)
    check_base(m, base_ref(llm.path, llm.name))
    return adapter


def _spec(args: ExtractArgs, adapter: Adapter | None) -> ExtractSpec:
    """The job's prompt; an adapter's own (a --schema given with it must be the same)."""
    if adapter is not None:
        trained = adapter.manifest.extraction
        if args.schema_ref and load_schema(args.schema_ref) != trained.json_schema:
            raise InvalidInputError(f"--adapter {adapter.manifest.name} was trained on another "
                                    "schema: leave --schema out, or train for this one",
                                    param="schema")
        return trained
    if not args.schema_ref:
        raise InvalidInputError("--schema is required (a JSON Schema file or "
                                "package.module:Model), unless --adapter brings one",
                                param="schema")
    return ExtractSpec(json_schema=load_schema(args.schema_ref), instructions=args.instructions,
                       max_text_tokens=args.max_text_tokens,
                       max_output_tokens=args.max_output_tokens)


def prepare(args: ExtractArgs, settings: Settings) -> Prepared:
    """Every check that can fail, before any work: raises InvalidInputError (exit 2)."""
    adapter = _adapter(args, settings)
    spec = _spec(args, adapter)
    found = row_job.inputs(args)
    job = {"inputs": classify_io.fingerprint(found.files), "text_column": args.text_column,
           "id_column": args.id_column, "gold_column": args.gold_column,
           "prompt": classify_io.short_hash(spec.model_dump()),
           "model": settings.models.llm or "bundled:smollm2",
           "adapter": f"{adapter.manifest.name}@{adapter.manifest.version}" if adapter else None}
    _output(args).check_job(job)
    return Prepared(inputs=found, spec=spec, job=job, adapter=adapter)


def _output(args: ExtractArgs) -> classify_io.Output:
    return classify_io.Output(args.output, RESULT_SCHEMA, job="extract")


def _stage(ds, prep: Prepared, args: ExtractArgs, settings: Settings):
    if args.via_serve:
        from pipelines.extract_llm import ServeExtractor

        model = settings.llm.model_id + (f":{prep.adapter.manifest.name}" if prep.adapter else "")
        return ds.map_batches(ServeExtractor, fn_constructor_kwargs={
            "url": args.via_serve, "model": model, "spec": prep.spec},
            batch_size=args.batch_size, concurrency=args.concurrency, num_cpus=0.25)
    from llama_rag.engine import actor_resources, engine_env
    from pipelines.adapter_merge import engine_for
    from pipelines.extract_llm import VLLMExtractor

    model_path, kwargs, lora = engine_for(prep.adapter, settings)
    return ds.map_batches(VLLMExtractor, fn_constructor_kwargs={
        "model_path": model_path, "engine_kwargs": kwargs, "env": engine_env(settings),
        "spec": prep.spec, "lora": lora},
        batch_size=args.batch_size, concurrency=args.concurrency, **actor_resources(settings))


def _write_batch(result: pa.Table, out: classify_io.Output, checker: Checker, spec: ExtractSpec,
                 fmt: str) -> int:
    """Valid objects as one atomic part, the rest to the errors with why and the raw text;
    returns the rows handled."""
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for row in result.to_pylist():
        value, why = checker.check(row["raw"])
        if value is not None:
            good.append({"id": row["id"], "data": json.dumps(value, ensure_ascii=False),
                         "truncated": row["truncated"], "gold": row["gold"]})
            continue
        if row["finish"] == "length":
            why = f"output cut off at --max-output-tokens {spec.max_output_tokens}: {why}"
        elif (row["finish"] or "").startswith("error:"):
            why = f"the deployment failed: {row['finish'][6:].strip()}"
        bad.append({"id": row["id"], "reason": why, "raw": row["raw"], "gold": row["gold"]})
    out.write_errors(bad)
    if good:
        out.write_results(pa.Table.from_pylist(good, schema=RESULT_SCHEMA), fmt)
    return len(good) + len(bad)


def _extract(prep: Prepared, pending: row_job.Pending, out: classify_io.Output,
             args: ExtractArgs, settings: Settings, started: float, echo) -> tuple[int, float | None]:
    """The rows through the LLM stage, written batch by batch: (rows handled, when the
    first batch came back)."""
    from llama_rag.ray_runtime import ensure_ray

    ensure_ray(settings.ray.num_cpus)
    import ray

    checker = Checker(prep.spec.json_schema)
    ds = ray.data.from_items(pending.rows, override_num_blocks=max(
        1, min(len(pending.rows) // args.batch_size, 200)))
    processed, first_at, last = 0, None, time.perf_counter()
    for result in _stage(ds, prep, args, settings).iter_batches(batch_size=None,
                                                                batch_format="pyarrow"):
        first_at = first_at or time.perf_counter()
        processed += _write_batch(result, out, checker, prep.spec, args.output_format)
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            echo(f"extracted {processed}/{len(pending.rows)} rows "
                 f"({processed / (last - started):.1f} rows/s)")
    return processed, first_at


def _metrics(results: pa.Table, errors: list[dict[str, Any]], spec: ExtractSpec
             ) -> tuple[ExtractMetrics, int]:
    """Field-level accuracy over every row with a gold object, failed outputs counted
    wrong; and how many gold cells could not be read."""
    predicted, gold, unreadable = [], [], 0
    rows = [(json.loads(r["data"]), r["gold"]) for r in results.to_pylist()]
    rows += [(None, e["gold"]) for e in errors if "raw" in e]  # failed outputs only
    for value, cell in rows:
        want, problem = parse_gold(cell)
        unreadable += problem is not None
        if want is not None:
            predicted.append(value)
            gold.append(want)
    return extract_metrics(predicted, gold, fields(spec.json_schema)), unreadable


def run(args: ExtractArgs, settings: Settings, echo=print) -> Summary:
    prep = prepare(args, settings)
    out = _output(args)
    with out.lock():  # one driver per output folder
        out.start(prep.job)
        started = time.perf_counter()
        pending = row_job.pending(prep.inputs, out, args)
        echo(f"{pending.total} input rows: {pending.skipped} already done, {len(pending.rows)} "
             f"to extract ({len(fields(prep.spec.json_schema))} fields)")
        processed, first_at = (_extract(prep, pending, out, args, settings, started, echo)
                               if pending.rows else (0, None))
        seconds = time.perf_counter() - started
        errors = out.merge_errors()
        results = out.results()
        summary = Summary(
            output=str(out.root), fields=fields(prep.spec.json_schema), input=pending.total,
            extracted=results.num_rows, errors=len(errors),
            failed_schema=sum("raw" in e for e in errors),
            skipped_already_done=pending.skipped, processed_this_run=processed,
            seconds=round(seconds, 2), rows_per_s=round(processed / seconds, 2) if seconds else 0.0,
            startup_s=round(first_at - started, 2) if first_at else None,
            truncated=sum(bool(t) for t in results.column("truncated").to_pylist()),
            complete=pending.total == results.num_rows + len(errors))
        if prep.adapter is not None:
            summary.adapter = prep.job["adapter"]
        if args.gold_column:
            summary.metrics, summary.gold_unreadable = _metrics(results, errors, prep.spec)
        (out.root / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def run_from_cli(config_path: Path | None, input_: str, **kwargs: Any) -> None:
    """Extract one JSON object per row of csv/jsonl/parquet files, valid against a JSON
    Schema (resumable: re-run the same command to finish; every row ends in the output
    or errors.jsonl)."""
    settings = load_settings(config_path)
    from llama_rag.model_files import apply_offline_policy

    apply_offline_policy(settings.models)
    args = ExtractArgs(input=input_, **kwargs)
    summary = run(args, settings, echo=lambda m: click.echo(m, err=False))
    click.echo(summary.model_dump_json(indent=2))
    if not summary.complete:
        raise click.ClickException(
            f"input ({summary.input}) != extracted ({summary.extracted}) + errors "
            f"({summary.errors}); re-run the same command to finish")


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.extract`: the job's own flags (those of `llama-rag extract`),
    errors mapped as the CLI maps them (llama_rag.commands)."""
    from llama_rag.commands import job_entry_point

    job_entry_point("extract", options, run_from_cli, argv)


if __name__ == "__main__":
    main()

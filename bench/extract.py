"""Structured extraction: the extraction job (guided decoding, then with a LoRA adapter
trained by `finetune --task extract`) against the plain way, the same model and prompt
asked for JSON without guided decoding and its reply parsed.

Rows: Debian package records as `apt show` prints them, the gold object the package,
version, maintainer e-mail and homepage (scripts/debian_packages.py --extract,
examples/debian-package.schema.json). Every 5th record is the test split, never
trained on; the adapter trains on --train-rows of the rest. One process run, every path
on the same test rows: the share of rows whose output is a valid object, field
accuracy (failed rows count wrong) and exact-object match.

    python bench/extract.py [--rows 300] [--train-rows 160]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench.report import save, scratch_settings  # noqa: E402
from labeled_csv import write as write_rows  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[1] / "examples" / "debian-package.schema.json"


def unguided(test: list[dict], settings) -> dict:
    """The baseline: the job's prompt, free generation, the reply parsed as people do (the
    span from the first ``{`` to the last ``}``, so code fences and chatter around the
    object do not count against it) and validated."""
    from llama_rag.engine import engine_env, engine_kwargs
    from llama_rag.model_files import resolve_llm
    from llama_rag.prompts import ExtractSpec, extract_messages
    from pipelines.extract_metrics import extract_metrics
    from pipelines.extract_schema import Checker, fields, load_schema

    os.environ.update(engine_env(settings))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM, SamplingParams

    spec = ExtractSpec(json_schema=load_schema(str(SCHEMA)))
    started = time.perf_counter()
    llm = LLM(model=resolve_llm(settings).path, **engine_kwargs(settings))
    tok = llm.get_tokenizer()
    prompts = [tok.apply_chat_template(extract_messages(spec, r["text"]), tokenize=False,
                                       add_generation_prompt=True) for r in test]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=spec.max_output_tokens),
                        use_tqdm=False)
    checker = Checker(spec.json_schema)
    predicted = [checker.check(_span(o.outputs[0].text))[0] for o in outs]
    m = extract_metrics(predicted, [json.loads(r["fields"]) for r in test],
                        fields(spec.json_schema))
    del llm
    gc.collect()
    return _figures(m, len(test), time.perf_counter() - started)


def _span(text: str) -> str:
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else text


def _figures(m, rows: int, seconds: float, **extra) -> dict:
    return {"valid": round(1 - m.failed / rows, 4), "field_accuracy": m.field_accuracy,
            "exact_match": m.exact_match,
            "per_field": {k: v.accuracy for k, v in m.per_field.items()},
            "wall_s": round(seconds, 1), **extra}


def job(test_csv: Path, work: Path, settings, adapter: str | None = None) -> dict:
    from pipelines.extract import ExtractArgs, run

    started = time.perf_counter()
    summary = run(ExtractArgs(input=str(test_csv), text_column="text", id_column="id",
                              gold_column="fields", schema_ref=None if adapter else str(SCHEMA),
                              adapter=adapter, output=work / f"out-{adapter or 'base'}"),
                  settings, echo=lambda m: None)
    return _figures(summary.metrics, summary.input, time.perf_counter() - started,
                    rows_per_s=summary.rows_per_s)


def train(train_csv: Path, settings) -> dict:
    from pipelines.finetune import run
    from pipelines.finetune_args import FinetuneArgs

    summary = run(FinetuneArgs(input=[str(train_csv)], name="records", task="extract",
                               text_column="text", label_column="fields",
                               schema_ref=str(SCHEMA), epochs=1, batch_size=8,
                               learning_rate=1e-3, eval_fraction=0.1), settings,
                  echo=lambda m: None)
    return {"train_rows": summary.train_rows, "seconds": summary.seconds,
            "eval_loss": summary.eval_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--train-rows", type=int, default=160)
    args = parser.parse_args()

    from debian_packages import extract_rows
    work, settings = scratch_settings("bench-extract-")
    rows = extract_rows(args.rows)
    test = rows[::5]
    train_rows = [r for i, r in enumerate(rows) if i % 5][: args.train_rows]
    test_csv, train_csv = work / "test.csv", work / "train.csv"
    write_rows(str(test_csv), test)
    write_rows(str(train_csv), train_rows)
    results = {"unguided": unguided(test, settings)}
    print(f"unguided        {results['unguided']}", flush=True)
    results["guided"] = job(test_csv, work, settings)
    print(f"guided          {results['guided']}", flush=True)
    trained = train(train_csv, settings)
    results["guided+lora"] = job(test_csv, work, settings, adapter="records")
    results["guided+lora"]["training"] = trained
    print(f"guided+lora     {results['guided+lora']}", flush=True)
    base = results["unguided"]
    for name in ("guided", "guided+lora"):
        ratio = (f"{results[name]['field_accuracy'] / base['field_accuracy']:.2f}x"
                 if base["field_accuracy"] else "n/a (baseline 0)")
        print(f"{name}: field accuracy {results[name]['field_accuracy']:.3f} against the "
              f"unguided baseline's {base['field_accuracy']:.3f} ({ratio}), valid "
              f"{results[name]['valid']:.2f} vs {base['valid']:.2f}")
    save("extract", {"data": f"Debian package records, {len(test)} test rows, "
                     f"{len(train_rows)} training rows", "results": results})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Fine-tuning data: read and check every row before Ray starts, split, and encode.

Rows are read with the classification job's reader (pipelines.classify_io), so a
row that cannot be used (empty text, bad bytes, a JSONL line that is no object) is
counted and listed in ``errors.jsonl`` with its id, never dropped silently. The
eval split is stable: a row's side depends on a hash of its id alone.

Encoding puts the answer last and pads on the left, so the loss needs the logits
of the last few positions only (``logits_to_keep``): the 49k-word vocabulary
projection of every prompt position would be most of the work on a CPU.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from llama_rag.errors import InvalidInputError
from pipelines.finetune_args import FinetuneArgs
from llama_rag.prompts import (DEFAULT_EXTRACT_INSTRUCTIONS, DEFAULT_INSTRUCTIONS, ExtractSpec,
                               LabelSet, PromptSpec, extract_messages, messages_for)
from pipelines import classify_io
from pipelines.classify_labels import load_labels

IGNORE = -100  # label id the loss skips


class Row(BaseModel):
    id: str
    text: str  # classify: the text; instruct: the prompt
    target: str  # classify: the label; instruct: the response


class TrainingData(BaseModel):
    train: list[Row]
    eval: list[Row]
    errors: list[dict[str, str]]
    labels: LabelSet | None
    spec: PromptSpec | ExtractSpec | None  # classify, extract: the job's prompt
    fingerprint: dict[str, Any]


def _columns(args: FinetuneArgs) -> tuple[str, str, str, str]:
    """(text column, target column, their flag names) for the task."""
    if args.task != "classify" and args.method != "lora":
        raise InvalidInputError(f"--method {args.method} trains a classifier: use "
                                "--task classify", param="method")
    if args.task in ("classify", "extract"):
        pairs = (("--text-column", args.text_column), ("--label-column", args.label_column))
    else:
        pairs = (("--prompt-column", args.prompt_column), ("--response-column", args.response_column))
    for flag, column in pairs:
        if not column:
            raise InvalidInputError(f"--task {args.task} needs {flag}", param=flag[2:])
    return pairs[0][1], pairs[1][1], pairs[0][0], pairs[1][0]


def _read(specs: Sequence[str], text_col: str, target_col: str, text_flag: str,
          target_flag: str) -> tuple[list[Row], list[dict[str, str]], list[Path]]:
    files = [f for spec in specs for f in classify_io.list_inputs(spec)]
    rows: list[Row] = []
    errors: list[dict[str, str]] = []
    for f in files:
        columns = classify_io.columns_of(f)
        for flag, column in ((text_flag, text_col), (target_flag, target_col)):
            if column not in columns:
                raise InvalidInputError(f"{flag} {column!r} is not a column of {f} (columns: "
                                        f"{', '.join(columns) or 'none'})", param=flag[2:])
        root = f.resolve().parent
        for batch in classify_io.read_rows(f.resolve(), root, text_col, None, target_col):
            for r in batch:
                target = (r["gold"] or "").strip()
                if r["error"]:
                    errors.append({"id": r["id"], "reason": r["error"]})
                elif not target:
                    errors.append({"id": r["id"], "reason": f"empty {target_flag[2:]}"})
                else:
                    rows.append(Row(id=r["id"], text=r["text"], target=target))
    return rows, errors, files


def split_labels(target: str, separator: str) -> list[str]:
    """A multi-label row's labels, in the order given, each once."""
    return list(dict.fromkeys(part.strip() for part in target.split(separator) if part.strip()))


def in_eval(row_id: str, fraction: float, seed: int) -> bool:
    """Stable split: the same id lands on the same side in every run."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def load(args: FinetuneArgs) -> TrainingData:
    """Every check that can fail, before Ray starts: raises InvalidInputError (exit 2)."""
    text_col, target_col, text_flag, target_flag = _columns(args)
    labels = spec = None
    if args.task == "classify":
        labels = load_labels(args.labels, args.labels_file)
        spec = PromptSpec(labels=labels, instructions=args.instructions, calibrate=False,
                          max_text_tokens=args.max_text_tokens)
    if args.task == "extract":
        spec = _extract_spec(args)
    rows, errors, files = _read(args.input, text_col, target_col, text_flag, target_flag)
    if args.eval_input:
        eval_rows, eval_errors, eval_files = _read(args.eval_input, text_col, target_col,
                                                   text_flag, target_flag)
        errors += eval_errors
        train = rows
    else:
        eval_files = []
        train = [r for r in rows if not in_eval(r.id, args.eval_fraction, args.seed)]
        eval_rows = [r for r in rows if in_eval(r.id, args.eval_fraction, args.seed)]
    if isinstance(spec, ExtractSpec):
        rows, eval_rows, train = (_objects(x, spec, errors) for x in (rows, eval_rows, train))
    if labels is not None and args.multi_label:
        for row in train + eval_rows:  # one spelling of each row's set: the labels' own order
            given = set(split_labels(row.target, args.label_separator))
            row.target = args.label_separator.join(
                [x for x in labels.labels if x in given] + sorted(given - set(labels.labels)))
    if labels is not None:
        unknown = Counter(t for r in train + eval_rows for t in _targets(r.target, args)
                          if t not in labels.labels)
        if unknown:
            listed = ", ".join(f"{k!r} ({n} rows)" for k, n in unknown.most_common(10))
            raise InvalidInputError(f"labels in the data missing from --labels: {listed}",
                                    param="labels")
    need_eval = len(labels.labels) if labels else 2
    if len(eval_rows) < need_eval and (args.eval_input or args.eval_fraction > 0):
        raise InvalidInputError(
            f"too few rows for evaluation: {len(eval_rows)} eval rows, at least {need_eval} "
            f"needed ({len(rows)} usable rows; raise --eval-fraction or give --eval-input)",
            param="eval-fraction")
    if len(train) < 2:
        raise InvalidInputError(f"too few training rows: {len(train)} usable (of "
                                f"{len(train) + len(errors)}; see the errors)", param="input")
    fingerprint = {"inputs": classify_io.fingerprint(files), "eval_inputs": classify_io.fingerprint(eval_files),
                   "columns": [text_col, target_col], "rows": len(rows) + len(errors),
                   "train_rows": len(train), "eval_rows": len(eval_rows),
                   "error_rows": len(errors),
                   "train_label_counts": dict(Counter(
                       t for r in train for t in _targets(r.target, args)).most_common())}
    return TrainingData(train=train, eval=eval_rows, errors=errors, labels=labels, spec=spec,
                        fingerprint=fingerprint)


def _extract_spec(args: FinetuneArgs) -> ExtractSpec:
    from pipelines.extract_schema import load_schema

    if not args.schema_ref:
        raise InvalidInputError("--task extract needs --schema (the objects' JSON Schema)",
                                param="schema")
    instructions = (DEFAULT_EXTRACT_INSTRUCTIONS if args.instructions == DEFAULT_INSTRUCTIONS
                    else args.instructions)
    return ExtractSpec(json_schema=load_schema(args.schema_ref), instructions=instructions,
                       max_text_tokens=args.max_text_tokens)


def _objects(rows: list[Row], spec: ExtractSpec, errors: list[dict[str, str]]) -> list[Row]:
    """Extract rows whose target is an object valid against the schema, written as the
    model should write it; the rest listed in the errors with why (once per row)."""
    from pipelines.extract_schema import Checker

    checker, kept = Checker(spec.json_schema), []
    listed = {e["id"] for e in errors}
    for row in rows:
        value, why = checker.check(row.target)
        if value is None:
            if row.id not in listed:
                errors.append({"id": row.id, "reason": f"label column: {why}"})
                listed.add(row.id)
            continue
        kept.append(row.model_copy(update={"target": json.dumps(value, ensure_ascii=False)}))
    return kept


def _targets(target: str, args: FinetuneArgs) -> list[str]:
    return split_labels(target, args.label_separator) if args.multi_label else [target]


def messages(row_text: str, spec: PromptSpec | ExtractSpec | None) -> list[dict[str, str]]:
    """The prompt's chat turns: the classification or extraction job's, the user turn for
    instruct."""
    if isinstance(spec, ExtractSpec):
        return extract_messages(spec, row_text)
    if spec is not None:
        return messages_for(spec, row_text)
    return [{"role": "user", "content": row_text}]


def truncate(tokenizer, text: str, max_tokens: int) -> str:
    """As the classification job truncates (pipelines.classify_llm.VLLMClassifier)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def encode(tokenizer, row: Row, spec: PromptSpec | ExtractSpec | None, max_tokens: int) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) where the answer is the assistant turn the chat template
    writes after the prompt (for SmolLM2: the label, then ``<|im_end|>``)."""
    turns = messages(truncate(tokenizer, row.text, max_tokens), spec)
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": row.target}],
                                         tokenize=False)
    if not full.startswith(prompt):
        raise InvalidInputError("the chat template does not extend the prompt with the answer",
                                param="task")
    answer = full[len(prompt):].rstrip("\n")
    return (tokenizer.encode(prompt, add_special_tokens=False),
            tokenizer.encode(answer, add_special_tokens=False))


class Batch(BaseModel):
    """Left-padded token ids and, for the last ``keep`` positions, the next-token labels
    (IGNORE everywhere but the answer)."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    position_ids: list[list[int]]
    labels: list[list[int]]
    keep: int


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> Batch:
    """The logits at position i predict token i+1, so the answer's labels sit one place
    left of the answer, inside the last ``keep`` = longest answer + 1 positions."""
    length = max(len(p) + len(a) for p, a in pairs)
    keep = max(len(a) for _, a in pairs) + 1
    ids, mask, pos, labels = [], [], [], []
    for prompt, answer in pairs:
        seq = prompt + answer
        pad = length - len(seq)
        ids.append([pad_id] * pad + seq)
        mask.append([0] * pad + [1] * len(seq))
        pos.append([0] * pad + list(range(len(seq))))
        row = [IGNORE] * keep
        row[keep - 1 - len(answer): keep - 1] = answer
        labels.append(row)
    return Batch(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels, keep=keep)

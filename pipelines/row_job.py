"""What every row job (classification, extraction) does with its input before the model:
list and check the files, read rows with stable ids, and leave out those done before.

A resumed job reads the ids already in its output folder (results and errors) and
queues the rest; rows that fail at input (empty text, bad bytes, a duplicate id) are
written to the errors now, so every input id ends in exactly one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

from llama_rag.errors import InvalidInputError
from pipelines import classify_io
from pipelines.row_args import RowJobArgs


class Inputs(BaseModel):
    files: list[Path]
    root: Path  # ids are paths relative to it


class Pending(BaseModel):
    rows: list[dict[str, Any]]  # {id, text, gold} still to do
    total: int  # input rows
    skipped: int  # done (or failed) in an earlier run
    failed: int  # failed at input (empty, undecodable, missing column): in the errors


def inputs(args: RowJobArgs) -> Inputs:
    """The input files and their root, every named column checked in each."""
    files = classify_io.list_inputs(args.input)
    root = Path(args.input) if Path(args.input).is_dir() else Path(
        os.path.commonpath([str(f.resolve().parent) for f in files]))
    for f in files:
        columns = classify_io.columns_of(f)
        for flag, column in (("--text-column", args.text_column), ("--id-column", args.id_column),
                             ("--gold-column", args.gold_column)):
            if column and column not in columns:
                raise InvalidInputError(f"{flag} {column!r} is not a column of {f} (columns: "
                                        f"{', '.join(columns) or 'none'})", param=flag[2:])
    return Inputs(files=files, root=root)


def rows(found: Inputs, args: RowJobArgs) -> Iterator[list[dict[str, Any]]]:
    """Input rows in order, ids made unique, stopping after --max-rows."""
    seen: set[str] = set()
    left = args.max_rows if args.max_rows is not None else -1
    for f in found.files:
        for batch in classify_io.read_rows(f.resolve(), found.root.resolve(), args.text_column,
                                           args.id_column, args.gold_column):
            if left == 0:
                return
            if left > 0:
                batch = batch[:left]
                left -= len(batch)
            for row in batch:
                if row["id"] in seen:
                    row["id"], row["error"] = f"{row['id']}#dup", "duplicate id in the input"
                seen.add(row["id"])
            yield batch


def pending(found: Inputs, out: classify_io.Output, args: RowJobArgs) -> Pending:
    """Every input row, minus those done before; input failures recorded now."""
    done = out.done_ids()
    todo: list[dict[str, Any]] = []
    total = skipped = failed_n = 0
    for batch in rows(found, args):
        total += len(batch)
        fresh = [r for r in batch if r["id"] not in done]
        skipped += len(batch) - len(fresh)
        failed = [{"id": r["id"], "reason": r["error"]} for r in fresh if r["error"]]
        out.write_errors(failed)
        failed_n += len(failed)
        todo += [{"id": r["id"], "text": r["text"], "gold": r["gold"]}
                 for r in fresh if not r["error"]]
    return Pending(rows=todo, total=total, skipped=skipped, failed=failed_n)

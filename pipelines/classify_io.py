"""Classification job input and output: rows with stable ids in, atomic parts out.

Input files (csv, jsonl, parquet; a file, a folder or a glob) are read with pyarrow
one file at a time; each row gets an id (the ``--id-column`` value, or
``<file>:<row>``). Rows that cannot be classified (empty or missing text, a line
that is not JSON, bytes that are not UTF-8) become error records, never silently
dropped. Results are written as numbered parts, each to a temporary name and then
renamed, so after ``kill -9`` a part is either whole or absent; a re-run reads the
ids already in the parts and skips them, which keeps every id exactly once.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from llama_rag.atomic import replace_durably, write_atomic
from llama_rag.errors import InvalidInputError, OutputLockedError
from llama_rag.jsonl import records
from llama_rag.locks import exclusive

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
RESULT_SCHEMA = pa.schema([("id", pa.string()), ("label", pa.string()),
                           ("confidence", pa.float64()), ("truncated", pa.bool_()),
                           ("raw", pa.string()), ("gold", pa.string())])
ERROR_SCHEMA = pa.schema([("id", pa.string()), ("reason", pa.string())])


def list_inputs(spec: str) -> list[Path]:
    """The input files a file, folder or glob names, sorted (so ids and order are stable)."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in globlib.glob(spec, recursive=True) if Path(p).is_file()]
    files = sorted(f for f in files if f.suffix.lower() in FORMATS)
    if not files:
        raise InvalidInputError(f"--input {spec}: no csv, jsonl or parquet files found",
                                param="input")
    return files


def columns_of(path: Path) -> list[str]:
    """Column names of one input file (first JSON object for jsonl), without reading it all."""
    kind = FORMATS[path.suffix.lower()]
    try:
        if kind == "parquet":
            return list(pq.read_schema(path).names)
        if kind == "csv":
            with pacsv.open_csv(path) as reader:
                return list(reader.schema.names)
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    return list(record) if isinstance(record, dict) else []
        return []
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InvalidInputError(f"--input: cannot read {path}: {exc}", param="input") from None


def fingerprint(files: list[Path]) -> list[dict[str, Any]]:
    return [{"path": str(f.resolve()), "size": f.stat().st_size} for f in files]


def _decode(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")  # UnicodeDecodeError: the caller records the row
    return str(value)


class _RowMaker:
    """``{id, text, gold, error}`` rows of one file, numbered in file order (the id when
    the file has no id column), decoding each cell on its own."""

    def __init__(self, rel: str, text_column: str, id_column: str | None,
                 gold_column: str | None) -> None:
        self.rel, self.text_column = rel, text_column
        self.id_column, self.gold_column = id_column, gold_column
        self.row_no = 0

    def failed(self, error: str) -> dict[str, Any]:
        self.row_no += 1
        return {"id": f"{self.rel}:{self.row_no}", "text": None, "gold": None, "error": error}

    def row(self, values: dict[str, Any]) -> dict[str, Any]:
        self.row_no += 1
        rid, error, text, gold = f"{self.rel}:{self.row_no}", None, None, None
        try:
            if self.id_column and values.get(self.id_column) not in (None, ""):
                rid = _decode(values[self.id_column])
            gold = _decode(values.get(self.gold_column)) if self.gold_column else None
            if self.text_column not in values:
                error = f"missing column {self.text_column!r}"
            else:
                text = _decode(values[self.text_column])
                if text is None or not text.strip():
                    error = "empty text"
        except UnicodeDecodeError:
            error, text = "undecodable: text is not valid UTF-8", None
        return {"id": rid, "text": text, "gold": gold, "error": error}


def _values(path: Path, kind: str, wanted: list[str]) -> Iterator[dict[str, Any] | str]:
    """Each row's values in file order, or for a JSONL line that is no object, why."""
    if kind == "jsonl":
        with open(path, "rb") as fh:
            for _, values, error in records(fh):
                yield f"undecodable: {error}" if error else values
        return
    if kind == "csv":
        present = set(columns_of(path))
        types = {c: pa.binary() for c in wanted if c in present}  # decode per row, not per file
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=[c for c in wanted if c in present]))
    else:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in wanted if c in present])
    for chunk in table.to_batches():
        yield from chunk.to_pylist()


def read_rows(path: Path, root: Path, text_column: str, id_column: str | None,
              gold_column: str | None, batch_rows: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``{id, text, gold, error}`` dicts for one file, in file order; a row that
    cannot be read is an error row with its id, never dropped."""
    rel = os.path.relpath(path, root) if path != root else path.name
    maker = _RowMaker(rel, text_column, id_column, gold_column)
    wanted = [c for c in (text_column, id_column, gold_column) if c]
    batch: list[dict[str, Any]] = []
    for values in _values(path, FORMATS[path.suffix.lower()], wanted):
        batch.append(maker.failed(values) if isinstance(values, str) else maker.row(values))
        if len(batch) >= batch_rows:
            yield batch
            batch = []
    if batch:
        yield batch


class Output:
    """The job's output directory: job.json, parts/, errors/ and, at the end, the summary.
    ``schema`` is the result parts' (the extraction job has its own), ``job`` names the
    job in messages."""

    def __init__(self, root: Path, schema: pa.Schema = RESULT_SCHEMA, job: str = "classify") -> None:
        self.root = Path(root)
        self.schema, self.job = schema, job
        self.parts = self.root / "parts"
        self.errors = self.root / "errors"

    def check_job(self, job: dict[str, Any]) -> bool:
        """True if resuming the same job; raises if the folder holds a different job."""
        marker = self.root / "job.json"
        if marker.exists():
            previous = json.loads(marker.read_text())
            if previous != job:
                changed = sorted(k for k in set(job) | set(previous)
                                 if job.get(k) != previous.get(k))
                raise InvalidInputError(
                    f"--output {self.root} holds a different job (differs in: "
                    f"{', '.join(changed)}); use a new --output folder", param="output")
            return True
        if self.root.exists() and any(p.name != ".lock" for p in self.root.iterdir()):
            raise InvalidInputError(f"--output {self.root} exists and is not the output "
                                    f"folder of the {self.job} job; use a new or empty folder",
                                    param="output")
        return False

    def lock(self):
        """Held for the whole job: a second driver on the same folder (a resubmission
        while the first still runs) would delete its unfinished parts and write ids twice."""
        def busy(holder: str) -> OutputLockedError:
            return OutputLockedError(
                f"--output {self.root} is being written by another {self.job} job ({holder}); "
                "wait for it or stop it (`ray job stop`), then run again to resume",
                param="output")

        return exclusive(self.root / ".lock", busy)

    def start(self, job: dict[str, Any]) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        self.errors.mkdir(parents=True, exist_ok=True)
        for stale in list(self.parts.glob(".tmp-*")) + list(self.errors.glob(".tmp-*")):
            stale.unlink()  # a part a killed run did not finish
        marker = self.root / "job.json"
        if not marker.exists():
            write_atomic(marker, json.dumps(job, indent=2).encode())

    def _parts(self) -> list[Path]:
        return sorted(list(self.parts.glob("part-*.parquet")) + list(self.parts.glob("part-*.jsonl")))

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for part in self._parts():
            done.update(_read_part(part, self.schema, ["id"]).column("id").to_pylist())
        for part in self.errors.glob("errors-*.jsonl"):
            with open(part, encoding="utf-8") as fh:
                done.update(json.loads(line)["id"] for line in fh if line.strip())
        return done

    def write_results(self, rows: pa.Table, fmt: str = "parquet") -> None:
        """One atomic part: written under a temporary name, fsynced, renamed."""
        final = self.parts / f"part-{uuid.uuid4().hex[:16]}.{fmt}"
        if fmt == "jsonl":
            write_atomic(final, "".join(json.dumps(r) + "\n" for r in rows.to_pylist()).encode())
            return
        tmp = self.parts / f".tmp-{final.name}"
        pq.write_table(rows, tmp)
        replace_durably(tmp, final)

    def write_errors(self, records: list[dict[str, str]]) -> None:
        if records:
            write_atomic(self.errors / f"errors-{uuid.uuid4().hex[:16]}.jsonl",
                          "".join(json.dumps(r) + "\n" for r in records).encode())

    def results(self) -> pa.Table:
        parts = self._parts()
        if not parts:
            return self.schema.empty_table()
        return pa.concat_tables(_read_part(p, self.schema) for p in parts)

    def merge_errors(self) -> list[dict[str, str]]:
        """Write errors.jsonl from the error parts; returns the records."""
        lines = []
        for part in sorted(self.errors.glob("errors-*.jsonl")):
            lines += [ln for ln in part.read_text(encoding="utf-8").splitlines() if ln.strip()]
        write_atomic(self.root / "errors.jsonl", "".join(ln + "\n" for ln in lines).encode())
        return [json.loads(ln) for ln in lines]


def _read_part(path: Path, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    if path.suffix == ".parquet":
        table = pq.read_table(path, schema=schema)
    else:
        rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln]
        table = pa.Table.from_pylist(rows, schema=schema)
    return table.select(columns) if columns else table


def short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]

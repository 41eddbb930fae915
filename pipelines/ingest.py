"""Ingest: files -> load + chunk (actors) -> embed (actor pool) -> FAISS version -> publish.

Only new and changed files go through Ray Data; unchanged files keep their rows and
vectors from the current version. Run it as ``llama-rag index`` or
``ray job submit -- python -m pipelines.ingest PATH... --index-dir DIR``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from indexing.access import FileLabel, label_file, row_groups
from indexing.chunking import Chunker
from indexing.corpus import Plan, SourceFile, check_paths, list_corpus, load_chunks, plan
from indexing.embedder import Embedder, EmbedderInfo, EmbedderRef, resolve_embedder, token_counter
from qa.evaluation.gate import GateSpec, GateVerdict, decide, load_gate_items, score_version
from indexing.store import CHUNK_SCHEMA, FileEntry, IndexStore, Manifest, check_embedder
from llama_rag.commands import settings_from
from llama_rag.config import ChunkSettings, IndexSettings, IngestSettings, ModelSettings, Settings
from llama_rag.errors import EmptyCorpusError, InvalidInputError, LoadError
from llama_rag.pii import mask
from llama_rag.location import collection_dir
from llama_rag.model_files import apply_offline_policy
from llama_rag.ray_runtime import ensure_ray
from llama_rag.commands import stdout_for_json
from pipelines.ingest_args import options, print_summary


# the chunk columns the pipeline makes; the driver adds ``groups`` for every row
ROW_SCHEMA = pa.schema([f for f in CHUNK_SCHEMA if f.name != "groups"])
ROW_COLUMNS = ["id", "doc_id", "source", "title", "heading", "text", "start", "end", "index",
               "metadata", "embed_text", "error", "file_chunks", "file_pages", "page"]


class IngestSummary(BaseModel):
    """What a run did; printed by the CLI, as JSON with --json."""

    index_dir: str
    version: str | None
    published: bool
    added: int
    updated: int
    unchanged: int
    deleted: int
    relabeled: int = Field(0, description="Unchanged files whose access labels changed: "
                           "their chunks got the new groups, not new vectors.")
    failed: int
    chunks_embedded: int
    chunks_total: int
    seconds: float
    chunks_per_s: float
    errors: list[dict[str, str | int]] = Field(
        ..., description="Files not indexed, and pages not read of files that were (with "
        "their page number).")
    gate: GateVerdict | None = Field(None, description="With --gate: the candidate's figures, "
                                     "the current version's, and why it was refused.")


def file_rows(file: SourceFile, chunker: Chunker, settings: IndexSettings,
              mask_pii: bool = False, ingest: IngestSettings | None = None) -> list[dict[str, Any]]:
    """The pipeline rows of one file: one per chunk and one error row per page that could
    not be read (``page`` > 0), or one error row with the reason. With ``mask_pii`` the
    stored and embedded text has PII replaced (llama_rag.pii)."""
    try:
        loaded = load_chunks(file, chunker, settings, ingest)
        chunks = loaded.chunks
        if mask_pii:
            chunks = [c.model_copy(update={"text": mask(c.text), "title": mask(c.title),
                                           "heading": [mask(h) for h in c.heading]})
                      for c in chunks]
    except LoadError as exc:
        return [_row(source=file.source, error=exc.message)]
    except Exception as exc:  # a parser bug must not sink the whole run
        return [_row(source=file.source, error=f"loader failed: {type(exc).__name__}: {exc}")]
    return [_row(id=c.id, doc_id=c.doc_id, source=c.source, title=c.title,
                 heading=json.dumps(c.heading), text=c.text, start=c.start, end=c.end,
                 index=c.index, metadata=json.dumps(c.metadata, default=str),
                 embed_text=c.embed_text(), file_chunks=len(chunks), file_pages=loaded.pages)
            for c in chunks] + [_row(source=file.source, error=p.error, page=p.page)
                                for p in loaded.problems]


def _row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in ROW_COLUMNS}
    row.update(start=0, end=0, index=0, file_chunks=0, heading="[]", metadata="{}", page=0,
               file_pages=0)
    row.update(values)
    return row


class LoadChunk:
    """Ray Data stage: a batch of files in, their chunk rows out. Loads the tokenizer once."""

    def __init__(self, embedder: EmbedderRef, chunking: ChunkSettings, index: IndexSettings,
                 models: ModelSettings, mask_pii: bool = False,
                 ingest: IngestSettings | None = None) -> None:
        apply_offline_policy(models)  # workers do not inherit the driver's environment
        self.mask_pii = mask_pii
        self.ingest = ingest
        self.chunker = Chunker(chunking.max_tokens, chunking.overlap_tokens,
                               token_counter(embedder.path))
        self.index = index

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        fields = list(SourceFile.model_fields)  # the columns from_items made of each file
        files = [SourceFile(**dict(zip(fields, values)))
                 for values in zip(*(batch[f] for f in fields))]
        rows = [r for f in files
                for r in file_rows(f, self.chunker, self.index, self.mask_pii, self.ingest)]
        return {c: [r[c] for r in rows] for c in ROW_COLUMNS}


class Embed:
    """Ray Data stage: adds a ``vector`` column; error rows get zeros and are dropped later."""

    def __init__(self, embedder: EmbedderRef, device: str, batch_size: int, threads: int | None,
                 concurrency: int, models: ModelSettings) -> None:
        apply_offline_policy(models)
        threads = threads or max(1, (os.cpu_count() or 1) // concurrency)
        self.embedder = Embedder(embedder, device, batch_size, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["error"] == ""
        vectors = np.zeros((len(ok), self.embedder.info.dim), dtype=np.float32)
        if ok.any():
            vectors[ok] = self.embedder.encode(batch["embed_text"][ok].tolist())
        batch = {k: v for k, v in batch.items() if k != "embed_text"}
        batch["vector"] = vectors
        return batch


EmbedFiles = Callable[[list[SourceFile], EmbedderRef, Settings], Iterable[dict[str, Any]]]


def embed_stage(ds, embedder: EmbedderRef, settings: Settings):
    """The embedder actor pool over a dataset with ``embed_text`` and ``error`` columns."""
    from ray.data import ActorPoolStrategy

    ing = settings.ingest
    return ds.map_batches(
        Embed, batch_size=ing.embed_batch_size, compute=ActorPoolStrategy(size=ing.embed_concurrency),
        num_gpus=ing.embed_num_gpus or None, num_cpus=ing.embed_num_cpus,
        fn_constructor_kwargs=dict(
            embedder=embedder, batch_size=ing.encode_batch_size,
            device="cuda" if ing.embed_num_gpus else settings.models.embed_device,
            threads=ing.embed_threads, concurrency=ing.embed_concurrency, models=settings.models))


def ray_embed_files(files: list[SourceFile], embedder: EmbedderRef,
                    settings: Settings) -> Iterator[dict[str, Any]]:
    """Run the Ray Data pipeline over ``files``; yields batches (column -> array) with vectors."""
    ensure_ray(settings.ray.num_cpus)  # before any `import ray`: loopback-only flag
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws one bar for the whole run
    # Small output blocks so embedded rows stream back batch by batch (the bar moves,
    # memory stays flat) instead of being merged into one block per input bundle.
    ctx.target_max_block_size = 512 * 1024
    ing = settings.ingest
    ds = ray.data.from_items([f.model_dump() for f in files],
                             override_num_blocks=max(1, min(len(files), 64)))
    ds = ds.map_batches(LoadChunk, batch_size=ing.files_per_batch,
                        compute=ActorPoolStrategy(size=ing.load_concurrency), num_cpus=0.5,
                        fn_constructor_kwargs=dict(embedder=embedder, chunking=settings.chunking,
                                                   index=settings.index, models=settings.models,
                                                   mask_pii=settings.privacy.mask_pii,
                                                   ingest=settings.ingest))
    ds = embed_stage(ds, embedder, settings)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


@dataclass
class _Collected:
    """What came back from the pipeline: chunk rows, their vectors, per-file errors."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


def _collect(batches: Iterable[dict[str, Any]], total_files: int, progress: bool) -> _Collected:
    """Gather chunk rows and vectors; advance the bar when a file's last chunk arrives."""
    from tqdm import tqdm

    out = _Collected()
    seen: dict[str, int] = {}
    pages, started = 0, time.perf_counter()
    bar = tqdm(total=total_files, unit="file", desc="indexing", disable=not progress,
               dynamic_ncols=True)
    with bar:
        for batch in batches:
            keep = [i for i, e in enumerate(batch["error"]) if not e]
            for i, err in enumerate(batch["error"]):
                page = int(batch["page"][i])
                if err and page:  # a page not read; the file's chunks come on their own
                    out.errors.append({"source": str(batch["source"][i]), "page": page,
                                       "error": str(err)})
                elif err:
                    out.errors.append({"source": str(batch["source"][i]), "error": str(err)})
                    bar.update(1)
            for i in keep:
                src = str(batch["source"][i])
                seen[src] = seen.get(src, 0) + 1
                if seen[src] == int(batch["file_chunks"][i]):
                    bar.update(1)
                    pages += int(batch["file_pages"][i])
                out.rows.append({c: _plain(batch[c][i]) for c in ROW_SCHEMA.names})
            if keep:
                out.vectors.append(np.asarray(batch["vector"])[keep])
            rate = {"pages/s": round(pages / (time.perf_counter() - started), 1)} if pages else {}
            bar.set_postfix(chunks=len(out.rows), **rate)
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _assemble(store: IndexStore, work: Plan, new: _Collected, dim: int,
              labels: dict[str, FileLabel], unlabeled: str) -> tuple[pa.Table, np.ndarray]:
    """Unchanged files' rows from the current version plus the new rows, sorted by
    source, every row's access groups computed afresh (indexing.access)."""
    parts, vecs = [], []
    current = store.current()
    if current and work.unchanged:
        table, vectors = store.read_version_rows(current)
        mask = np.isin(table.column("source").to_numpy(zero_copy_only=False), work.unchanged)
        parts.append(table.filter(pa.array(mask)).select(ROW_SCHEMA.names).cast(ROW_SCHEMA))
        vecs.append(vectors[mask])
    if new.rows:
        for r in new.rows:
            r["heading"] = json.loads(r["heading"])
        parts.append(pa.Table.from_pylist(new.rows, schema=ROW_SCHEMA))
        vecs.extend(new.vectors)
    table = pa.concat_tables(parts) if parts else ROW_SCHEMA.empty_table()
    vectors = np.vstack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
    order = pa.compute.sort_indices(table, [("source", "ascending"), ("index", "ascending")])
    table = table.take(order)
    groups = row_groups(labels, table.column("source").to_pylist(),
                        table.column("metadata").to_pylist(), unlabeled)
    table = table.append_column(CHUNK_SCHEMA.field("groups"),
                                pa.array(groups, CHUNK_SCHEMA.field("groups").type))
    return table, vectors[order.to_numpy()]


def _manifest(previous: Manifest | None, work: Plan, new: _Collected, info: EmbedderInfo,
              settings: Settings, labels: dict[str, FileLabel], table: pa.Table) -> Manifest:
    old = previous.files if previous else {}
    entries = {s: old[s] for s in work.unchanged + work.failed_before}
    counts: dict[str, int] = {}
    for r in new.rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    reasons = {e["source"]: e["error"] for e in new.errors if "page" not in e}
    for f in work.todo:
        entries[f.source] = FileEntry(path=f.path, hash=f.hash, chunks=counts.get(f.source, 0),
                                      error=reasons.get(f.source))
    first: dict[str, list[str]] = {}
    for source, groups in zip(table.column("source").to_pylist(),
                              table.column("groups").to_pylist()):
        first.setdefault(source, groups)
    unlabeled = settings.access.unlabeled
    for source, entry in entries.items():
        label = labels.get(source)
        if label is None:  # its labels could not be read: no limited caller sees it
            entries[source] = entry.model_copy(update={"label": None, "groups": []})
            continue
        entries[source] = entry.model_copy(update={
            "label": label, "groups": first.get(source, label.groups(None, unlabeled))})
    return Manifest(embedder=info, chunking=chunking_of(settings), unlabeled=unlabeled,
                    files=dict(sorted(entries.items())))


def file_labels(files: list[SourceFile], previous: Manifest | None,
                settings: Settings) -> tuple[list[SourceFile], dict[str, FileLabel]]:
    """Each file's access labels (indexing.access); a file whose labels cannot be read
    is refused (indexed with the wrong groups it could be shown to anyone). Files kept
    from other roots keep the labels they had."""
    labels = {s: e.label for s, e in (previous.files.items() if previous else ())
              if e.label is not None}
    out = []
    for f in files:
        try:
            labels[f.source] = label_file(Path(f.path), f.source, settings.access)
        except LoadError as exc:
            labels.pop(f.source, None)
            f = f.model_copy(update={"error": exc.message, "hash": "refused:" + exc.message})
        out.append(f)
    return out, labels


def relabeled(previous: Manifest | None, work: Plan, labels: dict[str, FileLabel],
              settings: Settings) -> list[str]:
    """Unchanged files whose labels changed since the current version (or every one,
    when ``access.unlabeled`` did): they get a new groups column, not new vectors."""
    if previous is None:
        return []
    if previous.unlabeled != settings.access.unlabeled:
        return list(work.unchanged)
    return [s for s in work.unchanged
            if (previous.files[s].label or FileLabel()) != labels.get(s, FileLabel())]


def chunking_of(settings: Settings) -> dict[str, Any]:
    """What decides a chunk's text: kept in the manifest, the same for every version."""
    return {**settings.chunking.model_dump(), "mask_pii": settings.privacy.mask_pii}


def check_chunking(previous: Manifest, settings: Settings) -> None:
    """Refuse to mix chunks cut (or masked) two ways in one index: unchanged files would
    keep their old chunks beside new ones."""
    want, have = chunking_of(settings), {"mask_pii": False, **previous.chunking}
    changed = sorted(k for k in want if have.get(k) != want[k])
    if changed:
        was = ", ".join(f"{k}={have.get(k)!r}" for k in changed)
        now = ", ".join(f"{k}={want[k]!r}" for k in changed)
        raise InvalidInputError(
            f"index version {previous.version} was built with {was}, this run has {now}: "
            "use the same settings, or index into a new directory", param=changed[0])


def run(paths: list[Path], settings: Settings, embed_files: EmbedFiles = ray_embed_files,
        progress: bool = False, gate: GateSpec | None = None) -> IngestSummary:
    """Index ``paths`` into ``settings.index.dir`` incrementally and publish a new version
    (with ``gate``, only if it passes qa.evaluation.gate; else CURRENT stays)."""
    started = time.perf_counter()
    apply_offline_policy(settings.models)
    roots = check_paths(paths)
    gate_items = load_gate_items(gate) if gate else None  # a bad QA file fails before any work
    verdict = None
    store = IndexStore(settings.index.dir, settings.index.cache_dir)
    with store.lock():
        files = list_corpus(roots, settings.index)
        if not files:
            raise EmptyCorpusError(
                f"no indexable files under {', '.join(map(str, roots))} "
                f"(looked for {' '.join(settings.index.extensions)}); nothing was published",
                param="paths")
        previous = store.previous_manifest()
        files, labels = file_labels(files, previous, settings)
        work = plan(files, roots, previous)
        moved = relabeled(previous, work, labels, settings)
        embedder = resolve_embedder(settings)
        if previous:
            check_embedder(previous, embedder.info(previous.embedder.dim))
            check_chunking(previous, settings)
        new = _collect(embed_files(work.todo, embedder, settings), len(work.todo), progress) \
            if work.todo else _Collected()
        info = _embedder_info(previous, embedder, new)
        failed = new.errors + [{"source": s, "error": previous.files[s].error or ""}
                               for s in work.failed_before] if previous else new.errors
        changed = bool(work.todo or work.deleted or moved)
        version = store.current()
        chunks_total = sum(e.chunks for e in previous.files.values()) if previous else 0
        if changed:
            table, vectors = _assemble(store, work, new, info.dim, labels,
                                       settings.access.unlabeled)
            if table.num_rows == 0:
                raise EmptyCorpusError(_nothing_indexed(failed), param="paths")
            manifest = _manifest(previous, work, new, info, settings, labels, table)
            staged = store.stage(table, vectors, manifest, failed, settings.index)
            if gate:
                verdict = _judge(store, staged, version, settings, gate, gate_items)
            if verdict is None or verdict.passed:
                store.promote(staged, settings.index)
                version, chunks_total = staged, table.num_rows
            else:
                store.discard(staged)
                changed = False
    seconds = time.perf_counter() - started
    return IngestSummary(
        index_dir=str(store), version=version, published=changed,
        added=len(work.added), updated=len(work.updated), unchanged=len(work.unchanged),
        deleted=len(work.deleted), relabeled=len(moved), failed=sum("page" not in e for e in failed), chunks_embedded=len(new.rows),
        chunks_total=chunks_total, seconds=round(seconds, 2),
        chunks_per_s=round(len(new.rows) / seconds, 2) if seconds else 0.0, errors=failed,
        gate=verdict)


def _judge(store: IndexStore, staged: str, current: str | None, settings: Settings,
           gate: GateSpec, items) -> GateVerdict:
    """The gate's verdict on the staged version against the current one, same questions."""
    from indexing.retriever import settings_embedder

    embedder = settings_embedder(settings)
    candidate = score_version(store.staged(staged), settings, items, embedder)
    before = score_version(store.open(current), settings, items, embedder) if current else None
    return decide(gate, candidate, before)


def _embedder_info(previous: Manifest | None, embedder: EmbedderRef,
                   new: _Collected) -> EmbedderInfo:
    """Name and backend from the config, dimension from the vectors just made (or the
    previous version)."""
    dim = new.vectors[0].shape[1] if new.vectors else (previous.embedder.dim if previous else 0)
    info = embedder.info(dim)
    if previous:
        check_embedder(previous, info)
    return info


def _nothing_indexed(failed: list[dict[str, str]]) -> str:
    if not failed:
        return "no chunks would be left in the index (every file was deleted); nothing was published"
    shown = "; ".join(f"{e['source']}: {e['error']}" for e in failed[:5])
    return f"no text could be indexed ({len(failed)} file(s) failed: {shown}); nothing was published"


def run_from_cli(paths: tuple[Path, ...], index_dir: str | None, collection: str | None,
                 concurrency: int | None, batch_size: int | None, num_gpus: float | None,
                 as_json: bool, progress: bool, gate_qa: Path | None, min_hit5: float | None,
                 min_answer_f1: float | None, gate_max_drop: float,
                 config_path: Path | None, ocr: str | None = None,
                 ocr_language: str | None = None) -> None:
    """Index files and folders (documents, slides, sheets, e-books, e-mail, scans)
    incrementally."""
    check_paths(list(paths))  # fail in a second, before Ray and torch load
    if gate_qa is None and (min_hit5 is not None or min_answer_f1 is not None):
        raise click.UsageError("--min-hit5 and --min-answer-f1 need --gate QA.jsonl")
    if collection:
        base = settings_from(config_path, **{"index.dir": index_dir}).index.dir
        index_dir = collection_dir(base, collection)
    settings = settings_from(
        config_path, **{"index.dir": index_dir, "ingest.embed_concurrency": concurrency,
                        "ingest.embed_batch_size": batch_size, "ingest.embed_num_gpus": num_gpus,
                        "ingest.ocr": ocr, "ingest.ocr_language": ocr_language,
                        # GPUs embed with torch (the CPU backends would leave them idle)
                        "models.embed_backend": "torch" if num_gpus else None})
    gate = GateSpec(qa=gate_qa, min_hit5=min_hit5, min_answer_f1=min_answer_f1,
                    max_drop=gate_max_drop) if gate_qa else None
    out = stdout_for_json() if as_json else sys.stdout
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        summary = run(list(paths), settings, progress=progress, gate=gate)  # Ray's log lines
    if as_json:  # stdout holds the JSON alone
        click.echo(summary.model_dump_json(indent=2), file=out)
        out.flush()
    else:
        print_summary(summary)
    if summary.gate and not summary.gate.passed:
        from llama_rag.errors import GateRefusedError

        raise GateRefusedError(f"gate refused the new version ({'; '.join(summary.gate.reasons)}); "
                               f"CURRENT stays {summary.version or 'unset'}")


def main(argv: list[str] | None = None) -> None:
    """`python -m pipelines.ingest`: the job's own flags (those of `llama-rag index`),
    errors mapped as the CLI maps them (llama_rag.commands)."""
    from llama_rag.commands import job_entry_point

    job_entry_point("ingest", options, run_from_cli, argv)


if __name__ == "__main__":
    main()

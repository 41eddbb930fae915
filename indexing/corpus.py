"""Which files make up a corpus, and what changed since the last published version.

Pure functions over the file system and the previous manifest, so the incremental
logic is unit-tested without Ray or a model.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import stat
from pathlib import Path

from pydantic import BaseModel

from indexing.access import own_groups
from indexing.chunking import Chunker
from indexing.documents import Chunk, PageProblem
from indexing.loaders import LoadOptions, load_path
from indexing.store import FileEntry, Manifest
from llama_rag.config import IndexSettings, IngestSettings
from llama_rag.errors import LoadError, NotFoundError


class SourceFile(BaseModel):
    """A file to index: where it is, the name it is cited by, its content hash; ``error``
    when listing already showed it cannot be indexed (a symlink leaving the corpus)."""

    path: str
    source: str
    hash: str
    error: str = ""


class Plan(BaseModel):
    """What a run must do: embed ``todo``, keep ``unchanged``, drop ``deleted``."""

    todo: list[SourceFile]
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]
    failed_before: list[str]  # unchanged files that failed last time: reported, not retried


def check_paths(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise NotFoundError(f"path does not exist: {', '.join(missing)}", param="paths")
    return [Path(p).resolve() for p in paths]


def _excluded(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) for p in patterns)


def _walk(root: Path, settings: IndexSettings) -> list[tuple[Path, str]]:
    """Supported files under ``root`` with their root-relative names, in sorted order.

    Iterative (a hostile corpus may nest folders a thousand deep: ``os.walk`` recurses
    and hits Python's recursion limit on 3.11); symlinked folders are not followed, so
    symlink loops cannot make it run forever.
    """
    if not root.is_dir():
        return [(root, root.name)]
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        rel_dir = os.path.relpath(folder, root)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing to list
        subdirs = []
        for entry in entries:
            rel = os.path.normpath(os.path.join(rel_dir, entry.name))
            if entry.is_dir(follow_symlinks=False):
                if not _excluded(rel + "/x", settings.exclude):
                    subdirs.append(Path(entry.path))
            elif (Path(entry.name).suffix.lower() in settings.extensions
                  and not _excluded(rel, settings.exclude)):
                found.append((Path(entry.path), rel))
        stack.extend(reversed(subdirs))
    return found


def _refusal(path: Path, root: Path) -> str:
    """Why a listed file is refused before it is opened, or "": a symlink that loops,
    dangles or leads out of the corpus root (a hostile corpus could otherwise index
    ~/.ssh or /etc and serve them as answers), or not a regular file (reading a FIFO
    would block the run forever)."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except RuntimeError:  # Python 3.11 reports a loop this way, 3.13 as ELOOP
            return "symlink loop"
        except OSError as exc:
            return "symlink loop" if exc.errno == errno.ELOOP else \
                "broken symlink: its target does not exist"
        if root.is_dir() and not target.is_relative_to(root.resolve()):
            return "symlink points outside the indexed folder"
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return "not a regular file"
    except OSError as exc:
        return f"cannot read: {exc.strerror or type(exc).__name__}"
    return ""


def file_hash(path: Path) -> str:
    """sha256 of the content, or of the error text when the file cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        return "unreadable:" + (exc.strerror or type(exc).__name__)
    return digest.hexdigest()


def list_corpus(roots: list[Path], settings: IndexSettings) -> list[SourceFile]:
    """Every indexable file under ``roots``. With several roots, sources are prefixed by root name."""
    prefix = len(roots) > 1
    files: dict[str, SourceFile] = {}
    for root in roots:
        for path, rel in _walk(root, settings):
            source = f"{root.name}/{rel}" if prefix and root.is_dir() else rel
            error = _refusal(path, root)
            digest = "refused:" + error if error else file_hash(path)
            files.setdefault(source, SourceFile(path=str(path), source=source, hash=digest,
                                                error=error))
    return list(files.values())


def _under(path: str, roots: list[Path]) -> bool:
    return any(Path(path) == r or Path(path).is_relative_to(r) for r in roots)


def plan(files: list[SourceFile], roots: list[Path], previous: Manifest | None) -> Plan:
    """Diff the listing against the previous manifest by content hash.

    Files of earlier runs that lie outside today's roots are kept: indexing a new
    folder into an existing index adds to it.
    """
    old: dict[str, FileEntry] = previous.files if previous else {}
    todo, added, updated, unchanged, failed_before = [], [], [], [], []
    for f in files:
        entry = old.get(f.source)
        if entry is None:
            added.append(f.source)
            todo.append(f)
        elif entry.hash != f.hash:
            updated.append(f.source)
            todo.append(f)
        elif entry.error:
            failed_before.append(f.source)
        else:
            unchanged.append(f.source)
    listed = {f.source for f in files}
    deleted = [s for s, e in old.items() if s not in listed and _under(e.path, roots)]
    for source, entry in old.items():  # from other roots: carried over as they were
        if source not in listed and not _under(entry.path, roots):
            (failed_before if entry.error else unchanged).append(source)
    return Plan(todo=todo, added=added, updated=updated, unchanged=unchanged,
                deleted=deleted, failed_before=failed_before)


class Loaded(BaseModel):
    """One file's chunks, the pages that could not be read, how many pages it has."""

    chunks: list[Chunk]
    problems: list[PageProblem]
    pages: int


def load_chunks(file: SourceFile, chunker: Chunker, settings: IndexSettings,
                ingest: IngestSettings | None = None) -> Loaded:
    """Load and chunk one file; raises LoadError with the reason when it yields nothing."""
    if file.error:
        raise LoadError(file.error)
    ingest = ingest or IngestSettings()
    options = LoadOptions(jsonl_text_field=settings.jsonl_text_field, ocr=ingest.ocr,
                          ocr_language=ingest.ocr_language)
    docs = load_path(Path(file.path), file.source, options, int(settings.max_file_mb * 1e6))
    modified = _modified(Path(file.path))
    for doc in docs:
        own_groups(doc.metadata)  # a bad access field refuses the file, as a bad sidecar does
        doc.metadata.setdefault("modified", modified)
    chunks = [c for doc in docs for c in chunker.split(doc)]
    if not chunks:
        raise LoadError("no text found in the file")
    return Loaded(chunks=chunks, problems=[p for doc in docs for p in doc.problems],
                  pages=sum(len(doc.pages) for doc in docs))


def _modified(path: Path) -> str:
    """The file's modification time (UTC, ISO 8601): a metadata field to filter on."""
    import datetime as dt

    try:
        stamp = path.stat().st_mtime
    except OSError:
        return ""
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")


def chunk_file(file: SourceFile, chunker: Chunker, settings: IndexSettings) -> list[Chunk]:
    """The chunks of one file (load_chunks without the page problems)."""
    return load_chunks(file, chunker, settings).chunks

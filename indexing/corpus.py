"""Which files make up a corpus, and what changed since the last published version.

Pure functions over the file system and the previous manifest, so the incremental
logic is unit-tested without Ray or a model.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path

from pydantic import BaseModel

from indexing.chunking import Chunker
from indexing.documents import Chunk
from indexing.loaders import load_path
from indexing.store import FileEntry, Manifest
from llama_rag.config import IndexSettings
from llama_rag.errors import LoadError, NotFoundError


class SourceFile(BaseModel):
    """A file to index: where it is, the name it is cited by, its content hash."""

    path: str
    source: str
    hash: str


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
    """Supported files under ``root`` with their root-relative names; symlinked dirs not followed."""
    if root.is_file():
        return [(root, root.name)]
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if not _excluded(
            os.path.normpath(os.path.join(rel_dir, d)) + "/x", settings.exclude))
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if Path(name).suffix.lower() in settings.extensions and not _excluded(rel, settings.exclude):
                found.append((Path(dirpath) / name, rel))
    return found


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
            files.setdefault(source, SourceFile(path=str(path), source=source, hash=file_hash(path)))
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


def chunk_file(file: SourceFile, chunker: Chunker, settings: IndexSettings) -> list[Chunk]:
    """Load and chunk one file; raises LoadError with the reason when it yields nothing."""
    docs = load_path(Path(file.path), file.source, settings.jsonl_text_field,
                     int(settings.max_file_mb * 1e6))
    chunks = [c for doc in docs for c in chunker.split(doc)]
    if not chunks:
        raise LoadError("no text found in the file")
    return chunks

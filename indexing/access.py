"""Access groups of documents: labels at ingest, the rows a caller may read at search.

A file's groups come from, in this order (the first that says anything wins):
its sidecar ``NAME.access`` (``report.pdf.access``), its own front matter or
properties (Markdown ``access:``, a docx ``access: ...`` keyword, a jsonl record's
``access`` field: the chunk's metadata), the nearest folder ``.access`` up to the
corpus root, the union of the ``access.rules`` globs it matches, else
``access.unlabeled`` (public, or no group at all). A labels file lists group names
separated by commas, spaces or lines; ``#`` starts a comment.

Groups are a column of the version's chunks, recomputed for every file on every run,
so a change of labels alone publishes a version with the new column and the same
vectors. ``public`` is a group every caller has.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydantic import BaseModel

from llama_rag.config import PUBLIC_GROUP, AccessSettings, check_groups
from llama_rag.errors import LoadError

SIDECAR = ".access"  # suffix of a file's labels, and the name of a folder's


class FileLabel(BaseModel):
    """What labels a file outside its content says (each None where nothing does)."""

    sidecar: list[str] | None = None
    folder: list[str] | None = None
    rules: list[str] | None = None

    def groups(self, own: list[str] | None, unlabeled: str) -> list[str]:
        """The file's groups, given what its content says (``own``)."""
        for found in (self.sidecar, own, self.folder, self.rules):
            if found is not None:
                return sorted(set(found))
        return [PUBLIC_GROUP] if unlabeled == PUBLIC_GROUP else []


def split_groups(text: str) -> list[str]:
    """Group names separated by commas or whitespace."""
    return text.replace(",", " ").split()


def _checked(names: list[str], where: str) -> list[str]:
    """``names``, sorted and once each; ``LoadError`` naming ``where`` for a bad one."""
    try:
        check_groups(names, where)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    return sorted(set(names))


def parse_groups(text: str, where: str) -> list[str]:
    """A labels file: names by commas, spaces or lines; ``#`` starts a comment."""
    return _checked([n for line in text.splitlines()
                     for n in split_groups(line.split("#", 1)[0])], where)


def _read(path: Path, where: str) -> list[str] | None:
    try:
        return parse_groups(path.read_text(encoding="utf-8"), where) if path.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"cannot read {where}: {exc}") from None


def label_file(path: Path, source: str, settings: AccessSettings) -> FileLabel:
    """The labels of the file at ``path``, cited as ``source`` (a path under the corpus
    root); ``LoadError`` for an unreadable or invalid labels file (the file is then not
    indexed: indexing it with the wrong groups could show it to anyone)."""
    sidecar = _read(path.with_name(path.name + SIDECAR), f"{source}{SIDECAR}")
    if sidecar is None and path.suffix:
        sidecar = _read(path.with_suffix(SIDECAR), f"{Path(source).with_suffix(SIDECAR)}")
    folder, parts = None, Path(source).parts[:-1]
    for depth in range(len(parts), -1, -1):  # the nearest folder first, up to the root
        base = path.parents[len(parts) - depth]
        folder = _read(base / SIDECAR, "/".join([*parts[:depth], SIDECAR]))
        if folder is not None:
            break
    matched = [groups for pattern, groups in settings.rules.items()
               if fnmatch.fnmatch(source, pattern)]
    rules = sorted({g for groups in matched for g in groups}) if matched else None
    return FileLabel(sidecar=sidecar, folder=folder, rules=rules)


def own_groups(metadata: dict[str, Any]) -> list[str] | None:
    """The groups a document's own front matter or properties name (``access``)."""
    value = metadata.get("access")
    if value is None:
        return None
    names = value if isinstance(value, list) else split_groups(str(value))
    return _checked([str(n) for n in names], "the document's access field")


def row_groups(labels: dict[str, FileLabel], sources: Iterable[str], metadata: Iterable[str],
               unlabeled: str) -> list[list[str]]:
    """The groups of each chunk row (its file's labels and its stored metadata)."""
    out = []
    for source, meta in zip(sources, metadata):
        own = own_groups(json.loads(meta)) if meta and '"access"' in meta else None
        out.append(labels.get(source, FileLabel()).groups(own, unlabeled))
    return out


class GroupRows:
    """Which rows each group may read, for a loaded version; cached per caller set."""

    def __init__(self, groups: list[list[str]] | None, num_rows: int) -> None:
        self.num_rows = num_rows
        self.masks: dict[str, np.ndarray] = {}
        for row, names in enumerate(groups if groups is not None else [None] * num_rows):
            for name in names if names is not None else [PUBLIC_GROUP]:  # unlabeled: before labels
                self.masks.setdefault(name, np.zeros(num_rows, dtype=bool))[row] = True
        self._cache: dict[frozenset[str], np.ndarray] = {}

    def allowed(self, groups: frozenset[str] | None) -> np.ndarray | None:
        """Sorted row ids readable with ``groups`` (None: every row, no limit)."""
        if groups is None:
            return None
        found = self._cache.get(groups)
        if found is None:
            keep = np.zeros(self.num_rows, dtype=bool)
            for name in groups | {PUBLIC_GROUP}:
                if name in self.masks:
                    keep |= self.masks[name]
            found = np.flatnonzero(keep)
            if len(self._cache) > 256:  # callers' group sets are few; bound them anyway
                self._cache.clear()
            self._cache[groups] = found
        return found

    def readable(self, names: list[str], groups: frozenset[str] | None) -> bool:
        """A file labeled ``names`` may be seen with ``groups``."""
        return groups is None or bool(set(names) & (groups | {PUBLIC_GROUP}))

"""One versioned store for everything the platform publishes: index versions and adapters.

Layout of a root (a local folder or a filesystem URI, ``llama_rag.location``)::

    CURRENT           id of the published version (replaced atomically)
    versions/<id>/    one complete, immutable version

A version is written under ``versions/.tmp-<id>`` on this machine, every file
fsynced, renamed into place, uploaded whole (a URI root), and only then named in
``CURRENT``: a reader never sees a half-written version, and a writer killed midway
leaves the previous version current and intact. Readers copy a URI root's version
into a local cache before loading it; versions never change, so a cached copy is
never stale. ``indexing.store.IndexStore`` and ``llama_rag.adapters.AdapterStore``
are built on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from llama_rag.atomic import fsync_dir, fsync_file
from llama_rag.errors import NotFoundError
from llama_rag.location import fetch, is_uri, new_version_id, shared_root


class VersionedStore:
    """Versions and ``CURRENT`` under ``location``; ``root`` is this machine's folder for
    it (the location itself, or a cache of a URI under ``cache_dir``)."""

    def __init__(self, location: Path | str, cache_dir: Path | str,
                 keep_cached: int | None = None) -> None:
        """``keep_cached``: downloaded versions a reader keeps of a URI root (None: all)."""
        if is_uri(location):
            self.location: Path | str = str(location).rstrip("/")
            digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
            self.root = Path(cache_dir).expanduser() / digest
        else:
            self.location = self.root = Path(location)
        self.shared = shared_root(self.location)  # published versions and CURRENT
        self.versions = self.root / "versions"
        self.keep_cached = keep_cached

    def __str__(self) -> str:
        return str(self.location)

    def current(self) -> str | None:
        return (self.shared.read_text("CURRENT") or "").strip() or None

    def published(self) -> list[str]:
        """Ids of the published versions, oldest first."""
        return [v for v in self.shared.list_dirs("versions") if not v.startswith(".")]

    def read_text(self, vid: str, name: str) -> str | None:
        """A file of a published version, read where it is published (None: missing)."""
        return self.shared.read_text("versions", vid, name)

    def local(self, vid: str, marker: str = "manifest.json") -> Path:
        """The local folder of version ``vid``, copied from a URI root on first use (a
        local root's versions are already here); ``marker``: a file every version has."""
        path = self.versions / vid
        if (path / marker).is_file():
            return path
        if not self.shared.is_file("versions", vid, marker):
            raise NotFoundError(f"version {vid} not found in {self}", param="version")
        self.versions.mkdir(parents=True, exist_ok=True)
        fetch(self.shared, path, "versions", vid)
        if self.keep_cached is not None:
            cached = sorted(p.name for p in self.versions.iterdir() if not p.name.startswith("."))
            for old in cached[:-self.keep_cached]:
                if old != vid:  # a loaded version's files stay readable after unlinking
                    shutil.rmtree(self.versions / old, ignore_errors=True)
        return path

    @contextlib.contextmanager
    def stage(self) -> Iterator[tuple[str, Path]]:
        """``(vid, folder)`` to write a new version into; on leaving the block, every file
        is fsynced and the folder renamed to ``versions/<vid>`` (not yet published:
        ``promote`` does that). An error inside the block leaves nothing behind."""
        vid = new_version_id()
        self.versions.mkdir(parents=True, exist_ok=True)
        tmp = self.versions / f".tmp-{vid}"
        tmp.mkdir()
        try:
            yield vid, tmp
            for f in sorted(tmp.rglob("*"), reverse=True):  # files, then their folders
                if f.is_file():
                    fsync_file(f)
                else:
                    fsync_dir(f)
            fsync_dir(tmp)
            os.rename(tmp, self.versions / vid)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.versions)

    def promote(self, vid: str) -> None:
        """Publish a staged version: upload it (a URI root), then point CURRENT at it."""
        self.shared.upload(self.versions / vid, "versions", vid)  # a no-op for a local root
        self.shared.write_text(vid + "\n", "CURRENT")

    def discard(self, vid: str) -> None:
        """Delete a staged version that will not be published."""
        if vid != self.current():
            shutil.rmtree(self.versions / vid, ignore_errors=True)

    def prune(self, keep: int) -> None:
        """Keep the newest ``keep`` versions (and always the current one), here and remotely."""
        current = self.current()
        if self.versions.is_dir():
            done = sorted(p.name for p in self.versions.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
            for old in done[:-keep]:
                if old != current:
                    shutil.rmtree(self.versions / old, ignore_errors=True)
        for old in self.published()[:-keep]:  # a URI root's own copies (a local root's are gone)
            if old != current:
                self.shared.delete_dir("versions", old)

    def remove_stale(self) -> None:
        """Leftovers of a killed writer or download (``.tmp-*``, ``.download-*``)."""
        if self.versions.is_dir():
            for tmp in [*self.versions.glob(".tmp-*"), *self.versions.glob(".download-*")]:
                shutil.rmtree(tmp, ignore_errors=True)

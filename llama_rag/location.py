"""Index roots given as filesystem URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``).

On a cluster every retriever replica must load the same published version, so the
index lives in shared storage. pyarrow's filesystems speak to it (S3 and GCS are in
the pyarrow wheel; credentials come from the usual environment and metadata
services). FAISS and bm25s read local files, so versions are copied whole into a
local cache before loading; versions never change once published, so a cached
copy is never stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from llama_rag.config import DEFAULT_COLLECTION

URI_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    return isinstance(location, str) and bool(URI_PATTERN.match(location))


def collection_dir(index_dir: Path | str, name: str | None) -> Path | str:
    """Where collection ``name`` lives: the index directory (or URI) itself for the default."""
    return index_dir if name in (None, DEFAULT_COLLECTION) else join(index_dir, "collections", name)


def join(location: str | Path, *parts: str) -> str | Path:
    """``location/parts`` for a local path or a URI (a URI keeps its ``//``)."""
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location, *parts)


class LocalRoot:
    """The same operations on a local folder: the store needs no branch for local roots,
    and a local version is already where a download or an upload would put it."""

    def __init__(self, path: Path) -> None:
        self.base = Path(path)

    def path(self, *parts: str) -> Path:
        return self.base.joinpath(*parts)

    def is_file(self, *parts: str) -> bool:
        return self.path(*parts).is_file()

    def is_dir(self, *parts: str) -> bool:
        return self.path(*parts).is_dir()

    def read_text(self, *parts: str) -> str | None:
        try:
            return self.path(*parts).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, text: str, *parts: str) -> None:
        from llama_rag.atomic import write_atomic

        write_atomic(self.path(*parts), text)

    def list_dirs(self, *parts: str) -> list[str]:
        folder = self.path(*parts)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def upload(self, local_dir: Path, *parts: str) -> None:
        import shutil

        if Path(local_dir).resolve() != self.path(*parts).resolve():
            shutil.copytree(local_dir, self.path(*parts), dirs_exist_ok=True)

    def download(self, local_dir: Path, *parts: str) -> None:
        import shutil

        shutil.copytree(self.path(*parts), local_dir, dirs_exist_ok=True)

    def delete_dir(self, *parts: str) -> None:
        import shutil

        shutil.rmtree(self.path(*parts), ignore_errors=True)


def new_version_id() -> str:
    """A published version's id (index or adapter): sortable by creation time
    (microseconds), unique by a random suffix."""
    import datetime as dt
    import secrets

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{now}-{secrets.token_hex(3)}"


def fetch(shared: "LocalRoot | RemoteRoot", local: Path, *parts: str) -> Path:
    """Copy the published folder ``parts`` of ``shared`` to ``local`` (downloaded under a
    temporary name, then renamed: a reader never sees half of it; when another process
    on this machine fetched it first, theirs is as good)."""
    import os
    import secrets
    import shutil

    tmp = local.with_name(f".download-{local.name}-{secrets.token_hex(3)}")
    try:
        shared.download(tmp, *parts)
        try:
            os.rename(tmp, local)
        except OSError:
            if not local.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def shared_root(location: str | Path) -> "LocalRoot | RemoteRoot":
    """Where published versions and ``CURRENT`` live: a local folder or a filesystem URI."""
    return RemoteRoot(str(location)) if is_uri(location) else LocalRoot(Path(location))


class RemoteRoot:
    """The few operations an index needs on a pyarrow filesystem, with paths relative to a root."""

    def __init__(self, uri: str) -> None:
        import pyarrow.fs as pafs

        self.uri = uri.rstrip("/")
        self.fs, self.base = pafs.FileSystem.from_uri(self.uri)
        self.base = self.base.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def _info(self, *parts: str):
        return self.fs.get_file_info(self.path(*parts))

    def is_file(self, *parts: str) -> bool:
        import pyarrow.fs as pafs

        return self._info(*parts).type == pafs.FileType.File

    def is_dir(self, *parts: str) -> bool:
        import pyarrow.fs as pafs

        return self._info(*parts).type == pafs.FileType.Directory

    def read_text(self, *parts: str) -> str | None:
        """The object's text, or None when it does not exist."""
        if not self.is_file(*parts):
            return None
        with self.fs.open_input_stream(self.path(*parts)) as fh:
            return fh.read().decode("utf-8")

    def write_text(self, text: str, *parts: str) -> None:
        """Write via a temporary name and a move: a rename on local and HDFS filesystems,
        and on object stores a single PUT, so a reader never sees half the text."""
        tmp = self.path(*parts[:-1], f".{parts[-1]}.tmp")
        with self.fs.open_output_stream(tmp) as fh:
            fh.write(text.encode("utf-8"))
        self.fs.move(tmp, self.path(*parts))

    def list_dirs(self, *parts: str) -> list[str]:
        import pyarrow.fs as pafs

        if not self.is_dir(*parts):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(*parts)))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def upload(self, local_dir: Path, *parts: str) -> None:
        import pyarrow.fs as pafs

        self.fs.create_dir(self.path(*parts), recursive=True)
        pafs.copy_files(str(local_dir), self.path(*parts),
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)

    def download(self, local_dir: Path, *parts: str) -> None:
        import pyarrow.fs as pafs

        local_dir.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self.path(*parts), str(local_dir), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())

    def delete_dir(self, *parts: str) -> None:
        self.fs.delete_dir(self.path(*parts))

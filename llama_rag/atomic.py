"""Crash-safe writes: a file (or folder) appears whole under its final name or not at all.

Write under a temporary name in the same folder, fsync it, rename it into place,
fsync the folder: the index store (versions, ``CURRENT``) and the classification
output (parts, errors) publish this way, so a killed writer never leaves a
half-written file where a reader looks.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, final: Path) -> None:
    """Move the written file ``tmp`` onto ``final`` once its bytes are on disk."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_atomic(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    replace_durably(tmp, path)

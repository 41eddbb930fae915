"""The indexed folder's files, for the links of citations (/v1/files/{source}).

Only a file under ``serve.documents_dir`` with a suffix the index reads is served;
anything else (a path that climbs out, a link leading out, a hidden or unindexed
file) is a plain 404, so the route reveals nothing about the rest of the disk.
"""

from __future__ import annotations

from pathlib import Path

from llama_rag.config import DEFAULT_COLLECTION, Settings
from llama_rag.errors import ForbiddenError, NotFoundError
from llama_rag.protocol import Access


def resolve(settings: Settings, source: str, access: Access | None = None) -> Path:
    """The file a citation's ``source`` names; ``access``: the caller's (the folder is
    the default collection's; its document groups the retriever checked before)."""
    root = settings.serve.documents_dir
    if root is None:
        raise NotFoundError("this server serves no documents (serve.documents_dir is unset)",
                            param="source")
    allowed = access.collections if access is not None else None
    if allowed is not None and DEFAULT_COLLECTION not in allowed:
        raise ForbiddenError("this API key may not read the default collection's documents",
                             param="source")
    base = Path(root).resolve()
    path = (base / source).resolve()
    hidden = any(part.startswith(".") for part in Path(source).parts)
    if (hidden or not path.is_relative_to(base) or not path.is_file()
            or path.suffix.lower() not in settings.index.extensions):
        raise NotFoundError(f"no document {source!r}", param="source")
    return path

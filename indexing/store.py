"""IndexStore: versioned FAISS index + parquet docstore + manifest, published atomically.

Layout of an index directory::

    CURRENT                    id of the published version (replaced with os.replace)
    .lock                      held (flock) by the one indexer allowed at a time
    versions/<id>/index.faiss  FAISS index; id i is row i of chunks.parquet and vectors.npy
    versions/<id>/chunks.parquet
    versions/<id>/vectors.npy  the raw vectors, so a re-index reuses unchanged files' rows
    versions/<id>/manifest.json
    versions/<id>/errors.jsonl files that could not be indexed, with the reason

Versions are staged, fsynced, renamed, uploaded and named in CURRENT by
``llama_rag.versioned.VersionedStore`` (shared with the adapter registry): a reader
never sees a half-written version, and an indexer killed midway leaves the previous
version current and intact. The root may also be a URI (``s3://bucket/idx``,
``gs://...``, ``file:///...``; ``llama_rag.location``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from indexing import faiss_index
from indexing.access import FileLabel, GroupRows
from indexing.api_entries import SymbolIndex, is_api_chunk
from indexing.rowsets import RowSetCache
from indexing.embedder import EmbedderInfo
from indexing.faiss_index import IndexInfo
from indexing.lexical import LexicalIndex
from llama_rag.location import collection_dir
from llama_rag.config import DEFAULT_INDEX_CACHE
from llama_rag.protocol import Hit
from llama_rag.errors import EmbedderMismatchError, IndexLockedError, NotFoundError
from llama_rag.locks import exclusive
from llama_rag.versioned import VersionedStore

CHUNK_SCHEMA = pa.schema([
    ("id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()),
    ("title", pa.string()), ("heading", pa.list_(pa.string())), ("text", pa.string()),
    ("start", pa.int64()), ("end", pa.int64()), ("index", pa.int64()), ("metadata", pa.string()),
    ("groups", pa.list_(pa.string())),  # access groups (indexing.access); absent before them
])


class FileEntry(BaseModel):
    """One indexed (or failed) file: its content hash decides whether it is embedded again."""

    path: str
    hash: str
    chunks: int = 0
    error: str | None = None
    label: FileLabel | None = None  # what labels it outside its content (indexing.access)
    groups: list[str] | None = None  # its groups, as its first chunk has them


class Manifest(BaseModel):
    version: str = ""
    created_at: str = ""
    embedder: EmbedderInfo
    chunking: dict[str, Any]
    index: IndexInfo | None = None
    files: dict[str, FileEntry] = Field(default_factory=dict)
    unlabeled: str = "public"  # access.unlabeled when it was built (indexing.access)

    def failed(self) -> dict[str, FileEntry]:
        return {s: f for s, f in self.files.items() if f.error}


def check_embedder(built: Manifest, want: EmbedderInfo) -> None:
    """Refuse to mix vectors of two embedders (or of two quantized runs of one): the
    scores would be meaningless. float32 backends make the same vectors
    (``EmbedderInfo.vectors``)."""
    have = built.embedder
    if have.vectors != want.vectors or have.dim != want.dim:
        raise EmbedderMismatchError(
            f"index version {built.version} was built with embedder {have.vectors} "
            f"(dim {have.dim}) but {want.vectors} (dim {want.dim}) is configured: set "
            f"models.embedder to {have.name!r}, models.embed_backend to {have.backend!r} "
            f"and models.embed_quantization to {have.quantization!r}, or index into a "
            "new directory", param="models.embedder")


ROW_SETS_KEPT = 8  # vector copies of callers' row sets kept per loaded version


class IndexVersion:
    """A loaded, immutable version: manifest, docstore, vectors and FAISS index."""

    def __init__(self, path: Path) -> None:
        import faiss

        self.path = path
        self.manifest = Manifest.model_validate_json((path / "manifest.json").read_text())
        self.chunks = pq.read_table(path / "chunks.parquet")
        self.vectors = np.load(path / "vectors.npy", mmap_mode="r")
        self.index = faiss.read_index(str(path / "index.faiss"))
        if self.manifest.index:
            faiss_index.apply_search_params(self.index, self.manifest.index)
        self._lexical: LexicalIndex | None = None
        self._symbols: SymbolIndex | None = None
        self._rows: dict[str, int] | None = None
        self._groups: GroupRows | None = None
        self._metadata: list[dict] | None = None
        self._api_rows: np.ndarray | None = None
        self._openings: np.ndarray | None = None
        self._row_vectors: RowSetCache[np.ndarray] = RowSetCache(ROW_SETS_KEPT)

    @property
    def groups(self) -> GroupRows:
        """Rows per access group; a version from before labels is public throughout."""
        if self._groups is None:
            column = self.chunks.column("groups").to_pylist() \
                if "groups" in self.chunks.column_names else None
            self._groups = GroupRows(column, self.chunks.num_rows)
        return self._groups

    def rows_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` as one array (kept for the last few row sets)."""
        return self._row_vectors.get(
            rows, lambda r: np.ascontiguousarray(self.vectors[r], dtype=np.float32))

    @property
    def metadata(self) -> list[dict]:
        """Each row's stored metadata, parsed once (metadata filters)."""
        if self._metadata is None:
            self._metadata = [json.loads(m) if m else {}
                              for m in self.chunks.column("metadata").to_pylist()]
        return self._metadata

    def stored_vectors(self, chunk_ids: list[str]) -> list[np.ndarray | None]:
        """The vectors this version holds for ``chunk_ids`` (None: not in it)."""
        if self._rows is None:
            self._rows = {cid: i for i, cid in enumerate(self.chunks.column("id").to_pylist())}
        rows = [self._rows.get(cid) for cid in chunk_ids]
        return [None if r is None else np.asarray(self.vectors[r], dtype=np.float32)
                for r in rows]

    @property
    def symbols(self) -> SymbolIndex:
        """API entry names -> rows of the chunks of API reference pages
        (indexing.api_entries), built on first use; empty for any other corpus."""
        if self._symbols is None:
            marked = self.api_rows.tolist()
            self._symbols = SymbolIndex.build(self.chunks.column("text").to_pylist(), marked) \
                if any(marked) else SymbolIndex({})
        return self._symbols

    @property
    def api_rows(self) -> np.ndarray:
        """Which rows are chunks of API reference pages (bool per row), computed once."""
        if self._api_rows is None:
            self._api_rows = np.fromiter(
                (is_api_chunk(m) for m in self.chunks.column("metadata").to_pylist()), bool,
                self.chunks.num_rows)
        return self._api_rows

    @property
    def openings(self) -> np.ndarray:
        """For each row, the row of its document's first chunk (title, NAME line or
        summary: what the document is about), computed once."""
        if self._openings is None:
            docs = np.unique(self.chunks.column("doc_id").to_numpy(zero_copy_only=False),
                             return_inverse=True)[1]
            order = np.lexsort((self.chunks.column("index").to_numpy(), docs))
            first = np.ones(len(order), dtype=bool)
            first[1:] = docs[order][1:] != docs[order][:-1]
            opening = np.empty(int(docs.max(initial=-1)) + 1, dtype=np.int64)
            opening[docs[order][first]] = order[first]
            self._openings = opening[docs]
        return self._openings

    @property
    def api_reference(self) -> bool:
        """The version holds API reference pages with entries (their answering profile
        applies, qa.api_reference)."""
        return bool(self.symbols)

    @property
    def lexical(self) -> LexicalIndex:
        """The version's BM25 counts; built in memory for versions published before they
        were stored (or stored as bm25s's precomputed scores)."""
        if self._lexical is None:
            if LexicalIndex.exists(self.path):
                self._lexical = LexicalIndex.load(self.path)
            else:
                self._lexical = LexicalIndex.build(self.chunks.column("text").to_pylist())
        return self._lexical

    @property
    def version(self) -> str:
        return self.manifest.version

    def check_embedder(self, info: EmbedderInfo) -> None:
        check_embedder(self.manifest, info)

    def nearest(self, query: np.ndarray, n: int) -> tuple[list[int], list[float]]:
        """Row ids and cosine scores of the ``n`` nearest rows (FAISS), best first."""
        if self.chunks.num_rows == 0:
            return [], []
        scores, ids = faiss_index.search(self.index, self.manifest.index, self.vectors,
                                         np.asarray(query), min(n, self.chunks.num_rows))
        rows = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        return [i for i, _ in rows], [s for _, s in rows]

    def hits(self, ids: list[int], scores: list[float]) -> list[Hit]:
        """Hits for row ``ids`` (best first) with their ``scores``."""
        if not ids:
            return []
        table = self.chunks.take(ids).to_pylist()
        return [Hit(rank=r + 1, score=score, source=row["source"], title=row["title"],
                    text=row["text"], chunk_id=row["id"], heading=row["heading"] or [],
                    start=row["start"], end=row["end"], **paging(row["metadata"]))
                for r, (score, row) in enumerate(zip(scores, table))]


def paging(metadata: str | None) -> dict:
    """A hit's page fields from its chunk's stored metadata (indexing.chunking)."""
    if not metadata or '"pages"' not in metadata:
        return {}
    meta = json.loads(metadata)
    pages = meta.get("pages") or []
    return {"page": int(pages[0]), "page_breaks": meta.get("page_breaks") or []} if pages else {}


KEEP_CACHED = 3  # downloaded versions kept per remote root on a reader


class IndexStore:
    """An index root: who may write it, which version is current, publishing (on
    ``llama_rag.versioned.VersionedStore``).

    ``location`` is a local folder or a filesystem URI; for a URI, ``root`` is this
    machine's cache of it (the writer lock, staging and downloaded versions).
    """

    def __init__(self, location: Path | str, cache_dir: Path | str | None = None) -> None:
        self.cache_dir = Path(cache_dir or DEFAULT_INDEX_CACHE).expanduser()
        self.store = VersionedStore(location, self.cache_dir, keep_cached=KEEP_CACHED)
        self.location, self.root, self.shared = self.store.location, self.store.root, \
            self.store.shared
        self.versions = self.store.versions

    def __str__(self) -> str:
        return str(self.location)

    def collection(self, name: str | None) -> "IndexStore":
        """The store of collection ``name`` (this one's root for the default collection)."""
        return IndexStore(collection_dir(self.location, name), self.cache_dir)

    def collections(self) -> list[str]:
        """Named collections under ``collections/`` that have a published version."""
        return [n for n in self.shared.list_dirs("collections")
                if self.shared.is_file("collections", n, "CURRENT")]

    def exists(self) -> bool:
        return self.shared.is_dir()

    def current(self) -> str | None:
        return self.store.current()

    def open(self, version: str | None = None) -> IndexVersion:
        vid = version or self.current()
        if vid is None:
            raise NotFoundError(f"no published index in {self}: run `llama-rag index` first",
                                param="index.dir")
        return IndexVersion(self._local(vid))

    def _local(self, vid: str) -> Path:
        try:
            return self.store.local(vid)
        except NotFoundError:
            raise NotFoundError(f"index version {vid} not found in {self}",
                                param="version") from None

    def previous_manifest(self) -> Manifest | None:
        vid = self.current()
        if vid is None:
            return None
        return Manifest.model_validate_json(self.store.read_text(vid, "manifest.json") or "")

    def read_version_rows(self, vid: str) -> tuple[pa.Table, np.ndarray]:
        path = self._local(vid)
        return pq.read_table(path / "chunks.parquet"), np.load(path / "vectors.npy")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock; released by the OS even if the indexer is killed."""
        def busy(holder: str) -> IndexLockedError:
            return IndexLockedError(f"index directory {self} is locked by another indexer "
                                    f"({holder}); wait for it to finish")

        with exclusive(self.root / ".lock", busy):
            self.store.remove_stale()
            yield

    def stage(self, chunks: pa.Table, vectors: np.ndarray, manifest: Manifest,
              errors: list[dict[str, Any]], settings) -> str:
        """Write a complete version in this machine's ``versions/`` without publishing it
        (``staged`` opens it; ``promote`` publishes it, ``discard`` deletes it)."""
        import faiss

        if chunks.num_rows != len(vectors):
            raise ValueError(f"{chunks.num_rows} chunks but {len(vectors)} vectors")
        with self.store.stage() as (vid, tmp):
            index, info = faiss_index.build(vectors, settings)
            manifest = manifest.model_copy(update={
                "version": vid, "index": info,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            faiss.write_index(index, str(tmp / "index.faiss"))
            pq.write_table(chunks.cast(CHUNK_SCHEMA), tmp / "chunks.parquet")
            np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
            LexicalIndex.build(chunks.column("text").to_pylist()).save(tmp)
            (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2))
            (tmp / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
        return vid

    def staged(self, vid: str) -> IndexVersion:
        return IndexVersion(self.versions / vid)

    def promote(self, vid: str, settings) -> None:
        """Publish a staged version, then keep the newest ``settings.keep_versions``."""
        self.store.promote(vid)
        self.store.prune(settings.keep_versions)

    def discard(self, vid: str) -> None:
        """Delete a staged version that will not be published."""
        self.store.discard(vid)

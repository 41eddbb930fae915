"""The adapter registry: fine-tuned adapters published like index versions.

Layout of ``adapters.dir`` (a folder or a filesystem URI, as ``index.dir``)::

    NAME/CURRENT                    id of the published version (replaced atomically)
    NAME/versions/<id>/manifest.json  what it was trained from, how, and how well it did
    NAME/versions/<id>/adapter_config.json, adapter_model.safetensors   (method lora)
    NAME/versions/<id>/head.safetensors                              (method embedding-head)
    NAME/versions/<id>/config.json, model.safetensors, tokenizer...   (method cross-encoder)
    NAME/versions/<id>/thresholds.json                               (method llm-yes-no)

Each NAME is a ``llama_rag.versioned.VersionedStore``, as an index is: a version is
complete before CURRENT names it, so a classification job or a server never loads a
half-written adapter; versions never change, so a cached copy is never stale.
Light on purpose (pydantic and pyarrow only): the CLI and the Serve app read it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llama_rag.config import AdapterSettings
from llama_rag.errors import InvalidInputError, NotFoundError
from llama_rag.location import is_uri, join, shared_root
from llama_rag.prompts import ExtractSpec, PromptSpec
from llama_rag.versioned import VersionedStore

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Method = Literal["lora", "embedding-head", "cross-encoder", "llm-yes-no"]
Task = Literal["classify", "instruct", "answer", "extract"]
# vLLM accepts these LoRA ranks (vllm/config/lora.py); anything else fails at load time.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def check_name(name: str) -> str:
    """A plain name: it becomes a folder and the part after ``:`` in ``<base>:<NAME>``."""
    if not NAME.match(name or "") or name in (".", ".."):
        raise InvalidInputError(
            f"adapter name {name!r} is not a plain name: use letters, digits, '_', '-' and '.' "
            "(at most 64, starting with a letter or digit)", param="name")
    return name


class BaseModelRef(BaseModel):
    """The model an adapter was trained on: its name and a hash of its config and weights'
    sizes, so an adapter for another model (or another conversion of it) is refused."""

    name: str
    hash: str


class Manifest(BaseModel):
    name: str
    version: str = ""
    created_at: str = ""
    method: Method
    task: Task
    base_model: BaseModelRef
    labels: list[str] = []
    prompt: PromptSpec | None = None  # classify: the job's prompt the adapter was trained on
    extraction: ExtractSpec | None = None  # extract: the schema and prompt it was trained on
    data: dict[str, Any] = {}  # fingerprint of the inputs, columns, row counts
    hyperparameters: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    lora_rank: int | None = None
    # an ensemble (`finetune --method auto`): the share of the embedding head's
    # probabilities (head.safetensors beside the LoRA weights) blended with the LLM's
    head_weight: float | None = None
    # a multi-label head (finetune --multi-label): what joins a row's labels
    multi_label_separator: str | None = None
    files: list[str] = Field(default_factory=list)


def model_fingerprint(path: Path | str) -> str:
    """A hash of a model folder's config and its weight files' names and sizes (cheap,
    and different for any other model or conversion)."""
    folder = Path(path)
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    for f in sorted(folder.glob("*.safetensors")):
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def base_ref(path: str, name: str) -> BaseModelRef:
    """The reference an adapter records of (and is checked against) a model folder or id."""
    folder = Path(path)
    return BaseModelRef(name=name, hash=model_fingerprint(folder) if folder.is_dir()
                        else hashlib.sha256(name.encode()).hexdigest()[:16])


class Adapter(BaseModel):
    """One published adapter version, as a local folder a job or a server can load."""

    manifest: Manifest
    path: Path


class AdapterStore:
    """An adapter registry root: list, read, publish; each NAME is a
    ``llama_rag.versioned.VersionedStore`` (URIs cached under ``cache_dir``)."""

    def __init__(self, location: Path | str, cache_dir: Path | str) -> None:
        self.location = str(location).rstrip("/") if is_uri(location) else Path(location)
        self.shared = shared_root(self.location)
        self.cache_dir = cache_dir

    @classmethod
    def of(cls, settings: AdapterSettings) -> "AdapterStore":
        """The registry the settings name (``adapters.dir``, cached under ``cache_dir``)."""
        return cls(settings.dir, settings.cache_dir)

    def __str__(self) -> str:
        return str(self.location)

    def _store(self, name: str) -> VersionedStore:
        return VersionedStore(join(self.location, check_name(name)), self.cache_dir)

    def names(self) -> list[str]:
        return [n for n in self.shared.list_dirs() if self.shared.is_file(n, "CURRENT")]

    def current(self, name: str) -> str | None:
        return self._store(name).current()

    def versions(self, name: str) -> list[str]:
        return self._store(name).published()

    def manifest(self, name: str, version: str | None = None) -> Manifest:
        store = self._store(name)
        vid = version or store.current()
        text = store.read_text(vid, "manifest.json") if vid else None
        if not text:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(f"no adapter {name!r}{' version ' + version if version else ''} "
                                f"in {self} (published: {known})", param="adapter")
        return Manifest.model_validate_json(text)

    def open(self, name: str, version: str | None = None) -> Adapter:
        """The version's manifest and a local folder holding its files."""
        manifest = self.manifest(name, version)
        return Adapter(manifest=manifest, path=self._store(name).local(manifest.version))

    def publish(self, files_dir: Path, manifest: Manifest) -> Manifest:
        """Copy ``files_dir`` and the manifest into a new version, then switch CURRENT."""
        store = self._store(manifest.name)
        with store.stage() as (vid, tmp):
            manifest = manifest.model_copy(update={
                "version": vid, "files": sorted(p.name for p in Path(files_dir).iterdir()),
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            shutil.copytree(files_dir, tmp, dirs_exist_ok=True)
            (tmp / "manifest.json").write_text(manifest.model_dump_json(indent=2))
        store.promote(vid)
        return manifest


def check_base(manifest: Manifest, base: BaseModelRef) -> None:
    """Refuse an adapter trained on another base model than the one configured."""
    if manifest.base_model.hash != base.hash:
        raise InvalidInputError(
            f"adapter {manifest.name} (version {manifest.version}) was trained on "
            f"{manifest.base_model.name} ({manifest.base_model.hash}), not on the configured "
            f"{base.name} ({base.hash}): train it again on this model", param="adapter")

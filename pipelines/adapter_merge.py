"""A LoRA adapter folded into its base model's weights, for jobs that use one adapter.

vLLM 0.32's CPU LoRA kernels gather a copy of the adapter weights per token
(vllm/lora/ops/torch_ops), so a classification job, which is nearly all prefill,
ran about 20x slower with the adapter on than the base model. A job uses one
adapter for every row, so on the CPU it runs a merged copy instead (``W + s*B@A``,
PEFT's ``merge_and_unload``): the base model's speed, the adapter's answers. GPUs keep
vLLM's LoRA (its kernels are fast) unless ``adapters.merge_for_jobs`` says otherwise.
Merged copies are cached per adapter version, published with a rename.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from llama_rag.adapters import Adapter
from llama_rag.config import Settings

READY = ".merged"


def should_merge(settings: Settings) -> bool:
    mode = settings.adapters.merge_for_jobs
    return mode == "always" or (mode == "auto" and not settings.llm.num_gpus)


def merged_model(adapter: Adapter, base_path: str, settings: Settings) -> Path:
    """The folder of ``base + adapter`` (float32 weights, the base's tokenizer), made once."""
    m = adapter.manifest
    dst = Path(settings.adapters.cache_dir).expanduser() / "merged" / m.name / m.version
    if (dst / READY).is_file():
        return dst
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dst.parent))
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, str(adapter.path)).merge_and_unload()
        merged.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(base_path).save_pretrained(tmp)
        (tmp / READY).write_text(f"{m.name} {m.version}\n")
        tmp.rename(dst)
    except OSError:
        if not (dst / READY).is_file():  # not another job's copy that won the rename
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def engine_for(adapter: Adapter | None, settings: Settings
               ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(model path, engine kwargs, LoRA to request or None) for a job's vLLM stage: the
    base model, a merged copy with ``adapter`` folded in, or the base with vLLM's LoRA."""
    from llama_rag.engine import engine_kwargs
    from llama_rag.model_files import resolve_llm

    kwargs = engine_kwargs(settings)
    model_path = resolve_llm(settings).path
    if adapter is None:
        return model_path, kwargs, None
    if should_merge(settings):  # one adapter for every row: fold it in once
        return str(merged_model(adapter, model_path, settings)), kwargs, None
    kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=adapter.manifest.lora_rank)
    return model_path, kwargs, {"name": adapter.manifest.name, "path": str(adapter.path)}

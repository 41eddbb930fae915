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

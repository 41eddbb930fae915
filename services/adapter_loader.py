"""LoRA adapters for the LLM replicas, read from our adapter registry.

Ray Serve LLM loads ``<base>:<NAME>`` from ``dynamic_lora_loading_path/NAME``, and in
Ray 2.60 that path must be an s3/gs/azure URI: a laptop's adapter folder fails its
check. Our replicas instead resolve NAME in the registry (``adapters.dir``: a
folder, or any filesystem URI pyarrow reads, S3-compatible servers included), copy
the current version into the local cache once, and hand vLLM that folder. The
registry's checks run first: an adapter for another base model is refused.
"""

from __future__ import annotations

import asyncio

from llama_rag.adapters import AdapterStore, base_ref, check_base
from llama_rag.config import AdapterSettings
from services.ray_compat import DiskMultiplexConfig, LoraModelLoader, get_lora_id, global_id_manager

CONFIG_KEY = "llama_rag_adapters"  # LLMConfig.experimental_configs entry: registry + base


class AdapterStoreLoader(LoraModelLoader):
    """Ray's loader (its per-replica cache and de-duplication of concurrent loads) with
    the registry as the source."""

    async def load_model_from_config(self, lora_model_id: str, llm_config) -> DiskMultiplexConfig:
        if lora_model_id in self.disk_cache:
            return self.disk_cache[lora_model_id]
        cfg = llm_config.experimental_configs[CONFIG_KEY]
        adapter = await asyncio.to_thread(_open, get_lora_id(lora_model_id), cfg)
        disk = DiskMultiplexConfig(model_id=lora_model_id, max_total_tokens=None,
                                   local_path=str(adapter.path),
                                   lora_assigned_int_id=global_id_manager.next())
        self.disk_cache[lora_model_id] = disk
        return disk


def _open(name: str, cfg: dict):
    adapter = AdapterStore.of(AdapterSettings.model_validate(cfg["settings"])).open(name)
    check_base(adapter.manifest, base_ref(cfg["base_path"], cfg["base_name"]))
    return adapter

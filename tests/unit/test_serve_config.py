"""Serve config files and the LLMConfig we build, checked without starting Ray."""

from pathlib import Path

import yaml

from llama_rag.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


import pytest


@pytest.mark.parametrize("name", ["local-cpu.yaml", "gpu.yaml"])
def test_serve_configs_match_serves_schema_and_our_settings(name):
    from ray.serve.schema import ServeDeploySchema

    data = yaml.safe_load((ROOT / "infra/serve" / name).read_text())
    [app] = ServeDeploySchema.model_validate(data).applications
    assert app.import_path == "services.app:app_builder"
    load_settings(None, app.args["overrides"])  # every override is a valid setting


def test_gpu_config_asks_one_gpu_per_replica_and_autoscales():
    from services.llm import build_llm_config

    data = yaml.safe_load((ROOT / "infra/serve/gpu.yaml").read_text())
    cfg = build_llm_config(load_settings(None, data["applications"][0]["args"]["overrides"]))
    assert cfg.placement_group_config == {"bundles": [{"CPU": 4, "GPU": 1}]}
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

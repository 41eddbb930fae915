"""Serve config files and the LLMConfig we build, checked without starting Ray."""

from pathlib import Path

import yaml

from llama_rag.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_local_cpu_serve_config_matches_serves_schema():
    from ray.serve.schema import ServeDeploySchema

    data = yaml.safe_load((ROOT / "infra/serve/local-cpu.yaml").read_text())
    schema = ServeDeploySchema.model_validate(data) if hasattr(
        ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(data)
    [app] = schema.applications
    assert app.import_path == "services.app:app_builder"
    load_settings(None, app.args["overrides"])  # every override is a valid setting


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

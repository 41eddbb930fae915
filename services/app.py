"""build_app(settings) -> the Serve application; `app_builder` is what Serve configs import.

Our API ingress (services.api) in front of Ray's LLM deployment, wired the way
`ray.serve.llm.build_openai_app` wires its own, and the retrieval deployment. The API
replica sheds load itself (services.admission: our JSON 503 with Retry-After beyond
`serve.max_running_requests` running and `serve.max_queued_requests` waiting); Serve's
own limits, set above ours, are only a backstop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_rag.config import Settings, load_settings


# Serve's own limits sit this far above ours: its router also counts requests that wait
# only to be routed (seconds, when the API replica's loop is slow on a busy CPU), and
# a tight Serve queue dropped those with its plain-text 503 under 4 clients.
SERVE_HEADROOM = 16


def build_app(settings: Settings):
    from ray import serve
    from services.ray_compat import (build_llm_deployment,
                                     maybe_apply_llm_deployment_config_defaults,
                                     to_model_metadata)

    from services.api import LlamaRagApi, api_class
    from services.llm import build_llm_config, serves_lora
    from services.rate_limit import rate_limiter_deployment
    from services.retriever import Retriever
    from qa.answerer import resolve_answer_mode

    settings = resolve_answer_mode(settings)  # auto -> by the model's size, decided once here

    config = build_llm_config(settings)
    defaults = LlamaRagApi.get_deployment_options([config])
    defaults.pop("autoscaling_config", None)  # a fixed count: serve.api_replicas
    options = maybe_apply_llm_deployment_config_defaults(defaults, {
            "num_replicas": settings.serve.api_replicas,
            # our admission control (services.admission) sheds first, in our error shape;
            # Serve's limits, above ours, are the backstop
            "max_ongoing_requests": settings.serve.max_running_requests
            + settings.serve.max_queued_requests + SERVE_HEADROOM,
            "max_queued_requests": settings.serve.max_queued_requests + SERVE_HEADROOM,
            "backpressure_config": {"status_code": 503,
                                    "retry_after_s": settings.serve.retry_after_s},
            "ray_actor_options": {"num_cpus": settings.serve.api_num_cpus},
        })
    return serve.deployment(api_class(settings), **options).bind(
        llm_deployments={config.model_id: build_llm_deployment(config, name_prefix="LLMServer:")},
        model_cards={config.model_id: to_model_metadata(config.model_id, config)},
        # adapters are served as <model_id>:<NAME> from the registry (services.adapter_loader)
        lora_paths={config.model_id: str(settings.adapters.dir)} if serves_lora(settings) else {},
        retriever=Retriever.options(
            ray_actor_options={"num_cpus": settings.retrieval.num_cpus}).bind(settings),
        # the per-key rate limit, shared by every API replica (services.rate_limit)
        rate_limiter=(rate_limiter_deployment(settings.serve.rate_limit_per_minute,
                                              settings.serve.rate_limit_burst)
                      if settings.serve.api_keys and settings.serve.rate_limit_per_minute
                      else None),
        settings=settings)


def app_builder(args: dict[str, Any]):
    """Entry for `serve run services.app:app_builder config=F` and Serve config files.

    ``args`` may name a settings file (``config``) and dotted overrides
    (``overrides: {"llm.max_model_len": 1024}``).
    """
    config = args.get("config")
    settings = load_settings(Path(config) if config else None, args.get("overrides") or {})
    return build_app(settings)

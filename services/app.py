"""build_app(settings) -> the Serve application; `app_builder` is what Serve configs import.

Today: Ray's OpenAI-compatible ingress in front of the LLM deployment. The API
replica sheds load itself: beyond `serve.max_queued_requests` waiting requests
Serve answers 503 with Retry-After at once instead of queueing without bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_rag.config import Settings, load_settings


def build_app(settings: Settings):
    from ray.serve.llm import build_openai_app

    from services.llm import build_llm_config

    serve = settings.serve
    return build_openai_app({
        "llm_configs": [build_llm_config(settings)],
        "ingress_deployment_config": {
            "max_ongoing_requests": serve.max_ongoing_requests,
            "max_queued_requests": serve.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": serve.retry_after_s},
        },
    })


def app_builder(args: dict[str, Any]):
    """Entry for `serve run services.app:app_builder config=F` and Serve config files.

    ``args`` may name a settings file (``config``) and dotted overrides
    (``overrides: {"llm.max_model_len": 1024}``).
    """
    config = args.get("config")
    settings = load_settings(Path(config) if config else None, args.get("overrides") or {})
    return build_app(settings)

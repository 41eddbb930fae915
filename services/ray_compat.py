"""Every Ray Serve LLM name the services build on, in one place (ray 2.60.*).

Public names come from ``ray.serve.llm`` where Ray 2.60 has them. The rest has no
public name yet and is imported here alone, with the private members we override
or call listed below; ``tests/unit/test_ray_compat.py`` checks each one, so a Ray
upgrade that moves or changes one fails there, in one place, not in a replica.

Private members relied on (checked by the test):
- ``OpenAiIngress._get_response(body=, call_method=, raw_request=)``: the one call
  into the LLM deployment (our LLM gate wraps it; /v1/ask uses it too);
- ``OpenAiIngress._get_model_id(model)``: model routing (we refuse bad adapter names);
- ``OpenAiIngress._default_serve_handles`` and ``._lora_paths``: handles per model id
  (health probes) and the LoRA configuration;
- ``LLMServer._batch_output_stream(generator)`` and ``._get_batch_interval_ms()``:
  stream batching (our first chunk leaves at once);
- ``LLMServer._init_multiplex_loader(model_downloader_cls)`` and
  ``LoraModelLoader.load_model_from_config(lora_model_id, llm_config)``: where a
  replica gets a LoRA adapter's local folder (ours reads the adapter registry, which
  may be a local folder; Ray's wants an s3/gs/azure URI), returning a
  ``DiskMultiplexConfig(model_id, max_total_tokens, local_path, lora_assigned_int_id)``.

Text formats relied on (``unwrap_llm_error``, checked against Ray's and vLLM's own
error builders): Ray's ingress wraps every error message as ``"Message: M, Internal
exception: ..."`` with ``" (Request ID: ...)"`` appended (M starts with the
exception's qualified class name when it is not an HTTP exception), and vLLM's validation errors
append ``" (parameter=P, value=V)"`` to M.
"""

from __future__ import annotations

import re

# public in ray 2.60
from ray.serve.llm import LLMServer, build_llm_deployment
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress
from ray.serve.llm.openai_api_models import (
    ChatCompletionRequest,
    ChatCompletionStreamResponse,
)

# internal: no public name in ray 2.60
from ray.llm._internal.common.dict_utils import (
    maybe_apply_llm_deployment_config_defaults,
)
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ErrorResponse,  # what the server returns (the public class is a subclass of it)
    ModelCard,
    ModelList,
    to_model_metadata,
)
from ray.llm._internal.serve.core.ingress.ingress import init as ingress_fastapi_app
from ray.llm._internal.serve.utils.batcher import Batcher
from ray.llm._internal.common.models import global_id_manager
from ray.llm._internal.common.utils.lora_utils import get_lora_id
from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader

_MESSAGE = re.compile(r"^Message: (?P<msg>.*?)(?:, Internal exception: .*)?$", re.S)
_EXC_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ")  # "vllm.exceptions.X: "
_REQUEST_ID = re.compile(r"\s*\(Request ID: [^)]*\)")
_PARAM = re.compile(r"\s*\(parameter=(?P<param>[\w.]+)(?:, value=[^)]*)?\)")


def unwrap_llm_error(raw: str) -> tuple[str, str | None]:
    """The client-facing message and the parameter it names, from the text Ray's LLM
    ingress (and vLLM inside it) put in an error body; other text passes through."""
    match = _MESSAGE.match(raw)
    message = match.group("msg") if match else raw
    message = _EXC_NAME.sub("", message)
    found = _PARAM.search(message)
    param = found.group("param") if found else None
    message = _PARAM.sub("", message)
    return _REQUEST_ID.sub("", message).strip(), param


__all__ = ["Batcher", "ChatCompletionRequest", "ChatCompletionStreamResponse",
           "DiskMultiplexConfig", "ErrorResponse", "LLMServer", "LoraModelLoader",
           "get_lora_id", "global_id_manager", "ModelCard", "ModelList", "OpenAiIngress", "build_llm_deployment",
           "ingress_fastapi_app", "make_fastapi_ingress",
           "maybe_apply_llm_deployment_config_defaults", "to_model_metadata",
           "unwrap_llm_error"]

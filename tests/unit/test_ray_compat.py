"""Each Ray Serve LLM internal that services.ray_compat names, as we use it: a Ray upgrade
that moves or changes one fails here, in one place."""

from __future__ import annotations

import inspect

import pytest

from services import ray_compat as rc


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_every_name_imports():
    for name in rc.__all__:
        assert getattr(rc, name) is not None, name


def test_ingress_private_members_we_override_or_read():
    assert _params(rc.OpenAiIngress._get_response) == ["self", "body", "call_method",
                                                       "raw_request"]
    assert _params(rc.OpenAiIngress._get_model_id) == ["self", "model"]
    init = inspect.getsource(rc.OpenAiIngress.__mro__[1].__init__)
    assert "self._default_serve_handles" in init and "self._lora_paths" in init
    assert _params(rc.make_fastapi_ingress)[:1] == ["cls"]
    assert {"endpoint_map", "app"} <= set(_params(rc.make_fastapi_ingress))


def test_llm_server_stream_batching_members():
    assert _params(rc.LLMServer._batch_output_stream) == ["self", "generator"]
    assert "stream" in _params(rc.LLMServer._get_batch_interval_ms)
    assert {"generator", "interval_ms"} <= set(_params(rc.Batcher.__init__))
    assert hasattr(rc.Batcher, "stream")


def test_lora_loader_members():
    assert _params(rc.LLMServer._init_multiplex_loader) == ["self", "model_downloader_cls"]
    assert _params(rc.LoraModelLoader.load_model_from_config) == ["self", "lora_model_id",
                                                                  "llm_config"]
    assert {"download_timeout_s", "max_tries"} <= set(_params(rc.LoraModelLoader.__init__))
    assert {"model_id", "max_total_tokens", "local_path", "lora_assigned_int_id"} <= set(
        rc.DiskMultiplexConfig.model_fields)
    assert rc.get_lora_id("smollm2:sections") == "sections"
    assert isinstance(rc.global_id_manager.next(), int)


def test_builders_and_models():
    from fastapi import FastAPI

    assert isinstance(rc.ingress_fastapi_app(), FastAPI)
    assert _params(rc.maybe_apply_llm_deployment_config_defaults) == ["defaults",
                                                                      "user_deployment_config"]
    assert _params(rc.to_model_metadata)[:2] == ["model_id", "model_config"]
    assert "name_prefix" in _params(rc.build_llm_deployment)
    # the server returns the internal ErrorResponse; the public one subclasses it
    from ray.serve.llm.openai_api_models import ErrorResponse as Public

    assert issubclass(Public, rc.ErrorResponse)
    assert {"data"} <= set(rc.ModelList.model_fields) and "id" in rc.ModelCard.model_fields


@pytest.mark.parametrize("packet", [
    'data: {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", '
    '"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n',
    ['data: {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", '
     '"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n', "data: [DONE]\n\n"],
])
def test_streamed_packets_parse_into_typed_chunks(packet):
    from services.api import _chunks

    [chunk] = _chunks(packet)
    assert isinstance(chunk, rc.ChatCompletionStreamResponse)
    assert chunk.choices[0].delta.content == "Hi"


def test_error_text_from_rays_ingress_and_vllm_unwraps_to_message_and_param():
    """Built by Ray's own error builder around vLLM's own validation error, so a change
    in either text format fails here."""
    from ray.llm._internal.serve.utils.server_utils import get_response_for_error
    from vllm.exceptions import VLLMValidationError

    exc = VLLMValidationError("max_tokens is too large", parameter="max_tokens", value=99999)
    body = get_response_for_error(exc, "req-42")
    assert body.error.code == 400
    message, param = rc.unwrap_llm_error(body.error.message)
    assert (message, param) == ("max_tokens is too large", "max_tokens")
    assert "req-42" not in message and "Internal exception" not in message


def test_other_error_text_passes_through():
    assert rc.unwrap_llm_error("index 'docs' is not loaded") == ("index 'docs' is not loaded",
                                                                None)

"""A bad request must still be reported as 4xx, in one body shape, without internals."""

import json

import pytest

from services.errors import openai_error

RAY_400 = {"error": {"message": "Message: max_tokens must be at least 1, got 0. (parameter=max_tokens, "
                                "value=0) (Request ID: a1-b2), Internal exception: ray.llm._internal."
                                "serve.core.configs.openai_api_models.OpenAIHTTPException (Request ID: "
                                "a1-b2), original exception: ", "type": "OpenAIHTTPException",
                     "param": None, "code": 400}}


@pytest.mark.parametrize("status,body,message,param,kind", [
    (400, RAY_400, "max_tokens must be at least 1, got 0.", "max_tokens", "invalid_request_error"),
    (404, {"detail": 'Got request for model "nope". Could not find base model with ID "nope".'},
     'Got request for model "nope". Could not find base model with ID "nope".', None,
     "not_found_error"),
    (400, {"error": {"message": "Invalid request format: JSON decode error at ('body', 1)",
                     "type": "json_invalid", "param": {}, "code": "invalid_parameter"}},
     "Invalid request format: JSON decode error at ('body', 1)", None, "invalid_request_error"),
    (503, {"detail": "Request dropped due to backpressure"}, "Request dropped due to backpressure",
     None, "overloaded_error"),
])
def test_bodies_are_rewritten_to_openai_shape(status, body, message, param, kind):
    out = openai_error(status, json.dumps(body).encode())
    assert out == {"error": {"type": kind, "message": message, "param": param, "code": status}}
    assert "ray.llm" not in json.dumps(out) and "Request ID" not in json.dumps(out)


def test_internal_errors_hide_their_text_and_plain_text_bodies_survive():
    out = openai_error(500, b'{"detail": "Traceback (most recent call last): ..."}')
    assert "Traceback" not in out["error"]["message"] and out["error"]["code"] == 500
    assert openai_error(413, b"too big")["error"]["message"] == "too big"


@pytest.mark.parametrize("errors,message,param", [
    ([{"type": "string_pattern_mismatch", "loc": ("body", "collection"), "input": "../../etc",
      "msg": "String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$'"}],
     "collection: String should match pattern", "collection"),
    ([{"type": "json_invalid", "loc": ("body", 1), "input": {}, "msg": "JSON decode error"}],
     "the request body is not valid JSON", None),
    ([{"type": "model_attributes_type", "loc": ("body",), "input": b"{not json",
       "msg": "Input should be a valid dictionary"}], "must be a JSON object", None),
    ([{"type": "greater_than_equal", "loc": ("body", "filters", "k"), "input": 0,
       "msg": "Input should be greater than or equal to 1"}], "filters.k: Input", "filters.k"),
])
def test_validation_errors_name_the_field_and_never_echo_raw_input(errors, message, param):
    from services.errors import validation_error

    out = validation_error(errors)
    assert out["error"]["param"] == param and message in out["error"]["message"]
    json.dumps(out)  # serialisable even when the rejected input was bytes
    assert "../../etc" not in json.dumps(out) and out["error"]["code"] == 400

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


def _all_error_types():
    from llama_rag import errors

    found, todo = [], [errors.LlamaRagError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def _instance(cls):
    from llama_rag import errors

    if issubclass(cls, errors.RateLimitedError):
        return cls("slow down", retry_after=7, param="field")
    if issubclass(cls, errors.UpstreamError):
        return cls("the engine refused it", status=400)
    return cls(f"{cls.__name__} happened", param="field")


def _client(burst: int):
    """The API's real FastAPI stack (Ray's middleware, our handler, the key check and the
    outermost rewrite), with one extra route that raises any of our error types."""
    from fastapi.testclient import TestClient

    from llama_rag.config import Settings
    from services.api import fastapi_app

    app = fastapi_app(Settings(serve={"api_keys": ["k1"], "rate_limit_per_minute": 60,
                                      "rate_limit_burst": burst}))
    by_name = {cls.__name__: cls for cls in _all_error_types()}

    @app.get("/raise/{name}")
    async def raise_(name: str):
        raise _instance(by_name[name])

    return TestClient(app)


@pytest.fixture(scope="module")
def error_client():
    return _client(burst=1000)


@pytest.mark.parametrize("cls", _all_error_types(), ids=lambda c: c.__name__)
def test_every_error_type_reaches_clients_in_one_shape(error_client, cls):
    exc = _instance(cls)
    resp = error_client.get(f"/raise/{cls.__name__}", headers={"authorization": "Bearer k1"})
    body = resp.json()
    assert resp.status_code == exc.http_status and set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "param", "code"}
    assert body["error"]["type"] == exc.type and body["error"]["code"] == exc.http_status
    if exc.http_status < 500 or exc.http_status == 503:
        assert body["error"]["message"] == exc.message
    if getattr(exc, "retry_after", None) is not None:
        assert int(resp.headers["retry-after"]) >= 1


def test_the_key_check_answers_with_our_error_types():
    error_client = _client(burst=1)
    missing = error_client.get("/raise/NotFoundError")
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = error_client.get("/raise/NotFoundError", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"]["type"] == "permission_error"
    ok = {"authorization": "Bearer k1"}
    statuses = [error_client.get("/raise/NotFoundError", headers=ok) for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].json()["error"]["type"] == "rate_limit_error"
    assert int(limited[0].headers["retry-after"]) >= 1

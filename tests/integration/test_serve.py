"""The LLM deployment over real HTTP with the real bundled model (vLLM on the CPU)."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.cluster import API_KEY, AUTH

pytestmark = pytest.mark.integration

CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "Name a colour."}]}


@pytest.fixture(scope="module")
def client(llm_server):
    return openai.OpenAI(base_url=f"{llm_server}/v1", api_key=API_KEY, max_retries=0)


def test_models_lists_the_served_model(client):
    # the grounded `rag` ids (one per collection: services/chat.py), then the LLM itself
    assert [m.id for m in client.models.list().data] == ["rag", "rag:extra", "smollm2"]


def test_chat_returns_text_with_usage(client):
    reply = client.chat.completions.create(max_tokens=16, temperature=0, seed=1, **CHAT)
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens <= 16 and reply.usage.prompt_tokens > 0


def test_chat_streams_until_done(llm_server, client):
    stream = client.chat.completions.create(max_tokens=16, temperature=0, stream=True, **CHAT)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()
    with httpx.stream("POST", f"{llm_server}/v1/chat/completions", timeout=120, headers=AUTH,
                      json={**CHAT, "max_tokens": 8, "stream": True}) as raw:
        lines = [line for line in raw.iter_lines() if line.strip()]
    assert lines[-1] == "data: [DONE]"


def test_completions_honour_stop_top_p_and_seed(client):
    kwargs = dict(model="smollm2", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0.7,
                  top_p=0.9, seed=7, stop=["9"])
    first = client.completions.create(**kwargs)
    again = client.completions.create(**kwargs)
    assert first.choices[0].text == again.choices[0].text  # same seed, same text
    assert "9" not in first.choices[0].text


@pytest.mark.parametrize("body,status,param,words", [
    (b"{not json", 400, None, "JSON"),
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
     400, "max_tokens", "max_tokens"),
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "temperature": -1}',
     400, "temperature", "temperature"),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, None, "nope"),
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "'
     + b"word " * 3000 + b'"}]}', 400, "input_tokens", "2048 tokens"),
])
def test_bad_input_gets_4xx_in_openai_shape(llm_server, body, status, param, words):
    resp = httpx.post(f"{llm_server}/v1/chat/completions", content=body, timeout=120,
                      headers={**AUTH, "content-type": "application/json"})
    assert resp.status_code == status, resp.text[:300]
    error = resp.json()["error"]
    assert set(error) == {"type", "message", "param", "code"} and error["code"] == status
    assert error["param"] == param and words in error["message"]
    for internal in ("Traceback", "ray.llm", "Internal exception", "Request ID"):
        assert internal not in resp.text


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=CHAT["messages"])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(max_tokens=0, **CHAT)


def test_health_and_readiness_probes(llm_server):
    assert httpx.get(f"{llm_server}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{llm_server}/readyz", timeout=30, headers=AUTH)
    assert ready.status_code == 200 and ready.json()["models"] == ["smollm2"]


def test_overload_is_answered_503_with_retry_after_at_once(llm_server):
    """20 requests at once against 4 running + 2 queued: the rest are refused fast."""

    async def one(http: httpx.AsyncClient) -> tuple[int, float, str | None]:
        started = time.perf_counter()
        resp = await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 48})
        return resp.status_code, time.perf_counter() - started, resp.headers.get("retry-after")

    async def burst():
        async with httpx.AsyncClient(base_url=llm_server, timeout=300, headers=AUTH) as http:
            return await asyncio.gather(*(one(http) for _ in range(20)))

    results = asyncio.run(burst())
    refused = [r for r in results if r[0] == 503]
    served = [r for r in results if r[0] == 200]
    assert len(served) + len(refused) == 20
    assert refused and served
    assert all(r[2] is not None for r in refused)  # Retry-After on every refusal
    assert max(r[1] for r in refused) < min(r[1] for r in served)  # refused before served


def test_extraction_via_serve_gets_objects_valid_against_the_schema(llm_server, monkeypatch):
    """`extract --via-serve`: the schema reaches the deployment as structured_outputs (guided
    decoding in the served engine), so even the 135M model's replies are the schema's
    objects; the job's own validation (pipelines.extract_schema) accepts each one."""
    from llama_rag.prompts import ExtractSpec
    from pipelines.extract_llm import ServeExtractor
    from pipelines.extract_schema import Checker

    monkeypatch.setenv("LLAMA_RAG_API_KEY", API_KEY)
    schema = {"type": "object", "properties": {
        "tool": {"type": "string", "maxLength": 20},
        "kind": {"type": "string", "enum": ["archiver", "editor", "game"]}},
        "required": ["tool", "kind"], "additionalProperties": False}
    stage = ServeExtractor(str(llm_server), "smollm2", ExtractSpec(json_schema=schema,
                                                              max_output_tokens=48))
    texts = ["gzip compresses files.", "vim edits text.", "0ad is a strategy game."]
    out = stage({"id": ["a", "b", "c"], "text": texts, "gold": [None] * 3})
    checker = Checker(schema)
    assert out["id"] == ["a", "b", "c"] and not any(out["truncated"])
    for raw, finish in zip(out["raw"], out["finish"]):
        value, why = checker.check(raw)
        assert value is not None, (why, finish)

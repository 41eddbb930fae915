"""API keys and the rate limit, driven through the ASGI middleware directly."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.auth import ApiKeyGuard, key_digests
from services.rate_limit import KeyBuckets, TokenBucket


async def _inner(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def call(guard: ApiKeyGuard, path: str = "/v1/ask", key: str | None = None):
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": headers, "client": ("127.0.0.1", 1)}
    asyncio.run(guard(scope, None, send))
    status = sent[0]["status"]
    return status, dict(sent[0]["headers"]), sent[1]["body"]


def guard(per_minute: int = 0, burst: int = 5, keys=("good",), shared=lambda: None
          ) -> ApiKeyGuard:
    return ApiKeyGuard(_inner, key_digests(list(keys)), per_minute, burst, shared=shared)


def test_missing_key_is_401_wrong_key_403_good_key_passes():
    g = guard()
    status, headers, body = call(g)
    assert status == 401 and headers[b"www-authenticate"] == b"Bearer"
    assert "Authorization: Bearer" in json.loads(body)["error"]["message"]
    assert call(g, key="bad")[0] == 403
    assert call(g, key="good")[0] == 200


def test_healthz_needs_no_key_and_no_keys_means_open():
    assert call(guard(), path="/healthz")[0] == 200
    assert call(guard(keys=()))[0] == 200


def test_the_key_never_appears_in_a_response_or_the_guard():
    g = guard(keys=("s3cret-key",))
    _, _, body = call(g, key="s3cret-wrong")
    assert b"s3cret" not in body
    assert "s3cret-key" not in repr(vars(g))


def test_rate_limit_answers_429_with_retry_after_per_key():
    g = guard(per_minute=60, burst=3, keys=("a", "b"))
    assert [call(g, key="a")[0] for _ in range(3)] == [200, 200, 200]
    status, headers, _ = call(g, key="a")
    assert status == 429 and int(headers[b"retry-after"]) >= 1
    assert call(g, key="b")[0] == 200  # another key has its own bucket


def test_token_bucket_refills():
    bucket = TokenBucket(per_minute=60, burst=1)
    assert bucket.take() == 0
    wait = bucket.take()
    assert 0 < wait <= 1.0
    bucket.stamp -= 1.0
    assert bucket.take() == 0


def test_the_page_and_its_assets_need_no_key_but_the_index_summary_does():
    g = guard()
    assert call(g, path="/")[0] == 200
    assert call(g, path="/ui/app.js")[0] == 200
    assert call(g, path="/v1/index")[0] == 401
    assert call(g, path="/ui/../v1/index")[0] == 401


def test_a_key_may_be_limited_to_collections_and_groups():
    from llama_rag.config import parse_api_key as parse_key
    from services.auth import ACCESS_STATE

    assert parse_key("plain") == ("plain", None, None)
    assert parse_key("team@docs+faq") == ("team", frozenset({"docs", "faq"}), None)
    assert parse_key("hr#hr+shared") == ("hr", None, frozenset({"hr", "shared"}))
    assert parse_key("x@docs#eng") == ("x", frozenset({"docs"}), frozenset({"eng"}))
    for bad in ("x#", "x@", "#hr", "x#bad group!"):
        with pytest.raises(ValueError):
            parse_key(bad)
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope.get("state", {}))
        await _inner(scope, receive, send)

    g = ApiKeyGuard(inner, key_digests(["admin", "team@docs", "hr#hr"]), 0, 5)
    assert call(g, key="team")[0] == 200 and seen[ACCESS_STATE].collections == {"docs"}
    assert call(g, key="admin")[0] == 200 and seen[ACCESS_STATE].collections is None
    assert seen[ACCESS_STATE].groups is None and seen[ACCESS_STATE].subject.startswith("key:")
    assert "admin" not in seen[ACCESS_STATE].subject
    assert call(g, key="hr")[0] == 200 and seen[ACCESS_STATE].groups == {"hr"}
    assert call(g, key="team@docs")[0] == 403  # the scope is not part of the key


@pytest.mark.parametrize("entry,words", [("team@", "names no collection"),
                                         ("team@Docs+../x", "invalid collection"),
                                         ("@docs", "no key")])
def test_bad_key_scopes_fail_when_settings_load(monkeypatch, entry, words):
    """Before any replica starts, and without echoing the key."""
    from llama_rag.config import load_settings
    from llama_rag.errors import ConfigError

    monkeypatch.setenv("LLAMA_RAG_API_KEYS", f"good,{entry}")
    with pytest.raises(ConfigError, match=words) as err:
        load_settings()
    assert "team" not in str(err.value)


def test_two_replicas_share_one_limit():
    """Two guards (two API replicas) asking one set of buckets (the RateLimiter
    deployment's): a key gets its burst once in all, not once per replica."""
    buckets = KeyBuckets(per_minute=1, burst=4)

    async def take(client):
        return buckets.take(client)

    replicas = [guard(per_minute=1, burst=4, keys=("k",), shared=lambda: take)
                for _ in range(2)]
    statuses = [call(replicas[i % 2], key="k")[0] for i in range(8)]
    assert statuses == [200] * 4 + [429] * 4


def test_without_the_shared_limiter_a_replica_limits_alone():
    async def dead(client):
        raise RuntimeError("replica is restarting")

    g = guard(per_minute=1, burst=2, keys=("k",), shared=lambda: dead)
    assert [call(g, key="k")[0] for _ in range(3)] == [200, 200, 429]

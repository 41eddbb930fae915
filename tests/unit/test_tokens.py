"""Bearer JWTs: minted here with locally generated keys, checked by the guard."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from llama_rag.config import JwtSettings
from services.auth import ACCESS_STATE, ApiKeyGuard, key_digests
from services.tokens import TokenVerifier
from tests.unit.test_auth import _inner, call

ISSUER, AUDIENCE = "https://id.example.test", "llama-rag"


@pytest.fixture(scope="module")
def keys():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(tmp_path: Path, keys) -> TokenVerifier:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys[0].public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig",
                                                              "alg": "RS256"}]}))
    return TokenVerifier(JwtSettings(jwks_file=tmp_path / "jwks.json", issuer=ISSUER,
                                     audience=AUDIENCE, groups_claim="realm.groups"))


def mint(key, kid="k1", alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
            "realm": {"groups": ["hr", "eng"]}, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                      headers={"kid": kid})


def test_a_valid_token_names_its_subject_and_groups(verifier, keys):
    access = verifier.verify(mint(keys[0]))
    assert access.subject == "sub:alice" and access.groups == {"hr", "eng"}
    assert verifier.verify(mint(keys[0], realm={})).groups == frozenset()  # public only


@pytest.mark.parametrize("change, message", [
    (dict(exp=int(time.time()) - 3600), "expired"),
    (dict(aud="another-app"), "another audience"),
    (dict(iss="https://evil.test"), "another issuer"),
    (dict(exp=None), "'exp'"),
    (dict(realm={"groups": "hr not!ok"}), "invalid group"),
])
def test_expired_foreign_and_malformed_tokens_are_refused(verifier, keys, change, message):
    from llama_rag.errors import AuthError

    with pytest.raises(AuthError, match=message):
        verifier.verify(mint(keys[0], **change))


def test_forged_tokens_are_refused(verifier, keys):
    from llama_rag.errors import AuthError

    with pytest.raises(AuthError, match="signature"):
        verifier.verify(mint(keys[1]))  # the right kid, another key
    with pytest.raises(AuthError, match="does not hold"):
        verifier.verify(mint(keys[1], kid="k9"))
    with pytest.raises(AuthError):  # "alg": "none" is never accepted
        verifier.verify(jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x",
                                    "exp": int(time.time()) + 60}, None, algorithm="none"))
    with pytest.raises(AuthError):  # an EC key where RSA is configured
        verifier.verify(mint(ec.generate_private_key(ec.SECP256R1()), alg="ES256"))


def test_the_guard_takes_tokens_and_keys_and_answers_401_in_our_shape(verifier, keys):
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope.get("state", {}))
        await _inner(scope, receive, send)

    g = ApiKeyGuard(inner, key_digests(["svc#eng"]), 0, 5, tokens=verifier)
    assert call(g, key=mint(keys[0]))[0] == 200 and seen[ACCESS_STATE].groups == {"hr", "eng"}
    assert call(g, key="svc")[0] == 200 and seen[ACCESS_STATE].groups == {"eng"}
    token = mint(keys[0], exp=int(time.time()) - 60)
    status, headers, body = call(g, key=token)
    error = json.loads(body)["error"]
    assert status == 401 and headers[b"www-authenticate"] == b"Bearer"
    assert "expired" in error["message"] and token not in body.decode()
    assert call(g, key=mint(keys[1]))[0] == 401


def test_settings_refuse_symmetric_algorithms_and_two_key_sources(tmp_path):
    with pytest.raises(ValueError, match="public-key"):
        JwtSettings(jwks_file=tmp_path / "j", issuer="i", audience="a", algorithms=["HS256"])
    with pytest.raises(ValueError, match="exactly one"):
        JwtSettings(jwks_file=tmp_path / "j", jwks_url="https://x", issuer="i", audience="a")

"""Bearer JWTs from an identity provider (``access.jwt``), checked with PyJWT.

The signature is checked against the provider's JWKS (a file, or the URL, fetched and
cached by ``PyJWKClient``), and ``iss``, ``aud`` and ``exp`` are required; the groups
come from ``groups_claim``. Every failure is an ``AuthError`` (401) that says which
check failed, never the token.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llama_rag.config import JwtSettings, check_groups
from llama_rag.errors import AuthError
from llama_rag.protocol import Access


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class TokenVerifier:
    """Verifies one provider's tokens; keys are read on first use in the replica (the
    app is pickled to its replicas, key objects are not picklable), once from a file,
    cached from a URL."""

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._keys = self._client = None
        self._loaded = False

    def _load(self) -> None:
        import jwt

        cfg = self.settings
        if cfg.jwks_file is not None:
            try:
                self._keys = jwt.PyJWKSet.from_dict(json.loads(cfg.jwks_file.read_text()))
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise AuthError(f"the identity provider's keys could not be read: "
                                f"{type(exc).__name__}") from None
        else:
            self._client = jwt.PyJWKClient(cfg.jwks_url, cache_keys=True, timeout=5)
        self._loaded = True

    def __getstate__(self) -> dict:
        return {"settings": self.settings}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["settings"])

    def _key(self, token: str):
        import jwt

        if not self._loaded:
            self._load()
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in self._keys.keys if kid is None or k.key_id == kid]
        if not keys:
            raise AuthError("the bearer token is signed with a key the identity provider's "
                            "JWKS does not hold")
        return keys[0].key

    def verify(self, token: str) -> Access:
        """The caller the token names; ``AuthError`` for a forged, expired, foreign or
        malformed token."""
        import jwt

        cfg = self.settings
        try:
            claims = jwt.decode(token, self._key(token), algorithms=cfg.algorithms,
                                audience=cfg.audience, issuer=cfg.issuer, leeway=cfg.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the bearer token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the bearer token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the bearer token's signature is not valid") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"the identity provider's keys could not be read: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the bearer token is not valid: {exc}") from None
        except (TypeError, ValueError):  # e.g. an ES256 header over the provider's RSA key
            raise AuthError("the bearer token's algorithm does not fit the provider's "
                            "key") from None
        return Access(subject=f"sub:{claims['sub']}", groups=self._groups(claims))

    def _groups(self, claims: dict[str, Any]) -> frozenset[str]:
        value: Any = claims
        for part in self.settings.groups_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return frozenset()  # no groups: public documents only
        names = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AuthError(f"the bearer token's {self.settings.groups_claim!r} claim is not "
                            "a list of group names")
        try:
            check_groups(names, "the bearer token")
        except ValueError as exc:
            raise AuthError(str(exc)) from None
        return frozenset(names)


def subject_of_key(digest_hex: str) -> str:
    """A key's name in logs and the audit trail: a prefix of its digest."""
    return f"key:{digest_hex[:12]}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()

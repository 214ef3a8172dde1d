"""JWTs the emulator mints over REST and accepts at login and
``signalwire.reauthenticate``: HMAC-signed with a key made at start-up, with
an ``exp`` claim, plus one-use refresh tokens. Thread-safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..rpc import JSONDict

DEFAULT_MINUTES = 15
MAX_REFRESH_TOKENS = 10_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Grant:
    resource: str
    minutes: int


class TokenIssuer:
    def __init__(self, project: str) -> None:
        self.project = project
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._refresh: dict[str, Grant] = {}

    def mint(self, resource: str | None = None, minutes: int | None = None) -> tuple[str, str]:
        """A new ``(jwt_token, refresh_token)``."""
        grant = Grant(resource or f"emulator-{secrets.token_hex(4)}", minutes or DEFAULT_MINUTES)
        now = time.time()
        claims = {
            "iss": "relay-emulator",
            "sub": self.project,
            "resource": grant.resource,
            "iat": int(now),
            "exp": now + grant.minutes * 60,
            "jti": secrets.token_hex(8),
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        refresh_token = secrets.token_urlsafe(24)
        with self._lock:
            if len(self._refresh) >= MAX_REFRESH_TOKENS:
                self._refresh.pop(next(iter(self._refresh)))
            self._refresh[refresh_token] = grant
        return f"{header}.{payload}.{signature}", refresh_token

    @property
    def refresh_token_count(self) -> int:
        with self._lock:
            return len(self._refresh)

    def refresh(self, refresh_token: str) -> tuple[str, str] | None:
        """Trade a refresh token (once) for a new pair; None when it is unknown or used."""
        with self._lock:
            grant = self._refresh.pop(refresh_token, None)
        return None if grant is None else self.mint(grant.resource, grant.minutes)

    def verify(self, token: Any) -> JSONDict | None:
        """The claims of a valid, unexpired token we minted; None otherwise."""
        if not isinstance(token, str) or token.count(".") != 2:
            return None
        header, payload, signature = token.split(".")
        expected = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if (
            not isinstance(claims, dict)
            or not isinstance(claims.get("exp"), (int, float))
            or claims["exp"] <= time.time()
        ):
            return None
        return claims

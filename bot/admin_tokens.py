"""Access and refresh tokens (JWT, HS256 only).

An access token lives 15 minutes and is checked against its session and its user on every
request, so sign-out and deactivation stop it at once. A refresh token lives as long as its
session and is single-use (rotated on every refresh). The two carry a `type` claim and neither
is accepted where the other is expected.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"  # pinned: the algorithm named in a token's header is never trusted
ACCESS_SECONDS = 15 * 60
REFRESH_SECONDS = 14 * 24 * 3600
ISSUER = "merge-assist"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "type", "iss"]
ACCESS, REFRESH = "access", "refresh"


class TokenRefused(Exception):
    """The token is malformed, forged, expired or of the wrong type (message is safe to show)."""


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    session_id: str
    token_id: str
    kind: str


class TokenService:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _encode(self, user_id: int, session_id: str, token_id: str, kind: str, seconds: int) -> str:
        now = int(time.time())
        claims = {"sub": str(user_id), "sid": session_id, "jti": token_id, "type": kind, "iss": ISSUER,
                  "iat": now, "exp": now + seconds}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def access_token(self, user_id: int, session_id: str) -> str:
        return self._encode(user_id, session_id, secrets.token_urlsafe(12), ACCESS, ACCESS_SECONDS)

    def refresh_token(self, user_id: int, session_id: str, refresh_jti: str) -> str:
        return self._encode(user_id, session_id, refresh_jti, REFRESH, REFRESH_SECONDS)

    def pair(self, user_id: int, session_id: str, refresh_jti: str) -> dict[str, Any]:
        return {"access_token": self.access_token(user_id, session_id), "token_type": "bearer",
                "expires_in": ACCESS_SECONDS, "refresh_token": self.refresh_token(user_id, session_id, refresh_jti),
                "refresh_expires_in": REFRESH_SECONDS}

    def decode(self, token: str, kind: str) -> TokenClaims:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": REQUIRED_CLAIMS})
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token has expired") from None
        except jwt.PyJWTError:
            raise TokenRefused("the token is not valid") from None
        if claims.get("type") != kind:
            raise TokenRefused(f"an {kind} token is required" if kind == ACCESS else f"a {kind} token is required")
        try:
            return TokenClaims(int(claims["sub"]), str(claims["sid"]), str(claims["jti"]), kind)
        except (TypeError, ValueError):
            raise TokenRefused("the token is not valid") from None

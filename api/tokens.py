"""Party tokens: HS256 JWTs (PyJWT) naming a device or a user.

``sub`` is the party key (``"device:LOBBY-1"``, ``"user:alice"``), ``exp`` the
expiry. Backends get them from ``POST /v1/tokens`` with the API key; devices
and resident apps present them as ``Authorization: Bearer`` or, on the
WebSocket, the ``token`` query parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from ringflow.contracts.common import Party

ALGORITHM = "HS256"
AUDIENCE = "ringflow"


class InvalidToken(Exception):
    """The token is malformed, badly signed or expired (``expired`` tells which)."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def issue(party: Party, secret: str, ttl_s: float, now: datetime | None = None) -> tuple[str, datetime]:
    """A token for ``party`` valid ``ttl_s`` seconds; returns (token, expires_at UTC)."""
    now = now or datetime.now(UTC)
    exp = now + timedelta(seconds=ttl_s)
    token = jwt.encode(
        {"sub": party.key(), "aud": AUDIENCE, "iat": now, "exp": exp}, secret, algorithm=ALGORITHM
    )
    return token, exp


def verify(token: str, secret: str) -> Party:
    """The party a valid token names. Raises :class:`InvalidToken`."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE)
        return Party.parse_key(str(claims["sub"]))
    except jwt.ExpiredSignatureError as e:
        raise InvalidToken("token expired", expired=True) from e
    except (jwt.InvalidTokenError, KeyError, ValueError) as e:
        raise InvalidToken("invalid token") from e

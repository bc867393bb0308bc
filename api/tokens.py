"""Party tokens: HS256 JWTs (PyJWT) naming a device or a user.

``sub`` is the party key (``"device:LOBBY-1"``, ``"user:alice"``), ``ten`` its tenant
(absent: the default tenant, so tokens issued before issue 9 stay valid), ``exp`` the
expiry. Backends get them from ``POST /v1/tokens`` with the API key; devices
and resident apps present them as ``Authorization: Bearer`` or, on the
WebSocket, the ``token`` query parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from ringflow.contracts.common import Party
from ringflow.contracts.tenancy import DEFAULT_TENANT

ALGORITHM = "HS256"
AUDIENCE = "ringflow"


class InvalidToken(Exception):
    """The token is malformed, badly signed or expired (``expired`` tells which)."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def issue(
    party: Party,
    secret: str,
    ttl_s: float,
    now: datetime | None = None,
    tenant_id: str = DEFAULT_TENANT,
) -> tuple[str, datetime]:
    """A token for ``party`` of tenant ``tenant_id`` valid ``ttl_s`` seconds; returns (token,
    expires_at UTC)."""
    now = now or datetime.now(UTC)
    exp = now + timedelta(seconds=ttl_s)
    claims: dict[str, object] = {"sub": party.key(), "aud": AUDIENCE, "iat": now, "exp": exp}
    if tenant_id != DEFAULT_TENANT:
        claims["ten"] = tenant_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


def verify(token: str, secret: str) -> Party:
    """The party a valid token names (see :func:`verify_identity` for its tenant). Raises
    :class:`InvalidToken`."""
    return verify_identity(token, secret)[1]


def verify_identity(token: str, secret: str) -> tuple[str, Party]:
    """(tenant id, party) of a valid token. Raises :class:`InvalidToken`."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE)
        return str(claims.get("ten", DEFAULT_TENANT)), Party.parse_key(str(claims["sub"]))
    except jwt.ExpiredSignatureError as e:
        raise InvalidToken("token expired", expired=True) from e
    except (jwt.InvalidTokenError, KeyError, ValueError) as e:
        raise InvalidToken("invalid token") from e

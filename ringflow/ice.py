"""ICE servers for a peer connection: STUN/TURN URLs from settings and ephemeral TURN
credentials (the TURN REST API scheme), for the bridge and for every party.

The scheme is that of draft-uberti-behave-turn-rest-00 ("A REST API For Access To TURN
Services", section 2.2), which coturn implements as ``use-auth-secret`` +
``static-auth-secret`` (coturn's ``turnserver.conf`` and README.turnserver, "TURN REST
API"): ringflow and coturn share one secret (``RINGFLOW_TURN_SECRET`` = coturn's
``static-auth-secret``), and nobody else ever sees it. For a party ringflow makes

- ``username = "<expiry>:<party key>"``: the expiry is a Unix time in whole seconds (now +
  ``RINGFLOW_TURN_TTL_S``), the party key ``user:ID`` / ``device:SN``
  (:meth:`ringflow.contracts.common.Party.key`). coturn reads the timestamp before the first
  ``:`` (its ``rest-api-separator``) and refuses the username once that time has passed;
- ``credential = base64(HMAC-SHA1(secret, username))``, which coturn recomputes from the
  username, so it needs no database of users.

coturn checks the credential on every authenticated TURN request, the Refresh and
CreatePermission requests that keep an allocation alive during a call included (RFC 8656
sections 7 and 9): a credential must outlive the longest call that uses it. Clients ask for
a fresh one (``GET /v1/media/ice-servers``) before each peer connection, the bridge makes
one per peer.

Base layer: settings, the standard library and pydantic only (no web framework, no aiortc):
``media/network.py`` makes aiortc's ``RTCIceServer`` from :func:`ice_servers`, the API route
``api/routers/media.py`` returns :class:`IceServers` as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from ringflow.settings import Settings

BRIDGE_PARTY_KEY = "bridge"
"""The party key in the usernames of the media bridge's own TURN credentials."""


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """One ephemeral TURN credential (draft-uberti-behave-turn-rest-00 section 2.2):
    ``username`` ``"<expires_at>:<party key>"``, ``credential`` the base64 HMAC-SHA1 of the
    username under the shared secret, ``expires_at`` Unix time, whole seconds."""

    username: str
    credential: str
    expires_at: int


def turn_credential(secret: str, party_key: str, ttl_s: float, now: float | None = None) -> TurnCredential:
    """The TURN credential of ``party_key`` (e.g. ``"user:u-1"``), valid ``ttl_s`` seconds
    from ``now`` (Unix time, seconds; default: the clock), under coturn's
    ``static-auth-secret`` ``secret``: username ``f"{expiry}:{party_key}"`` with ``expiry =
    int(now + ttl_s)``, credential ``base64(HMAC-SHA1(secret, username))`` (UTF-8 for both;
    draft-uberti-behave-turn-rest-00 section 2.2; coturn ``use-auth-secret``).

    Raises ``ValueError`` for an empty ``secret`` or ``party_key``, or ``ttl_s <= 0``."""
    if not secret:
        raise ValueError("no TURN secret")
    if not party_key:
        raise ValueError("no party key")
    if ttl_s <= 0:
        raise ValueError(f"TURN credential lifetime must be positive, not {ttl_s}")
    expires_at = int((time.time() if now is None else now) + ttl_s)
    username = f"{expires_at}:{party_key}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


class IceServer(BaseModel):
    """One entry of ``RTCConfiguration.iceServers`` (W3C WebRTC, ``RTCIceServer``): STUN/TURN
    ``urls`` and, for TURN with credentials, ``username`` and ``credential`` (absent
    otherwise: serialised without them, as a browser wants them)."""

    urls: list[str] = Field(
        description="``stun:``/``turn:``/``turns:`` URLs (RFC 7064, RFC 7065), e.g. "
        "``turn:turn.example.com:3478?transport=udp``"
    )
    username: str | None = Field(
        None, description="TURN username ``<expiry unix time>:<party key>`` (TURN REST API)"
    )
    credential: str | None = Field(None, description="TURN password: base64 HMAC-SHA1 of the username")

    # No return annotation on purpose: pydantic then keeps the fields' schema in OpenAPI
    # (with ``-> dict[str, Any]`` it would document a free-form object).
    @model_serializer(mode="wrap")
    def _without_none(self, handler: SerializerFunctionWrapHandler):
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class IceServers(BaseModel):
    """``GET /v1/media/ice-servers``: what a party puts in its ``RTCPeerConnection``
    (``new RTCPeerConnection({iceServers: ice_servers})``) and until when it may."""

    ice_servers: list[IceServer] = Field(
        description="``RTCIceServer[]``; empty when the deployment has no STUN/TURN server "
        "(host candidates only)"
    )
    expires_at: datetime | None = Field(
        None,
        description="when the TURN credentials stop working (UTC); null without credentials. "
        "Ask again for every new peer connection",
    )


@dataclass(frozen=True)
class IcePolicy:
    """Where peers find STUN/TURN servers, from settings (:meth:`from_settings`):

    - ``urls`` (``RINGFLOW_MEDIA_ICE_SERVERS``): STUN (or credential-free TURN) URLs, given
      as they are;
    - ``turn_urls`` (``RINGFLOW_TURN_URLS``): TURN URLs given with an ephemeral
      :func:`turn_credential` of the party when ``turn_secret`` (``RINGFLOW_TURN_SECRET``,
      coturn's ``static-auth-secret``; never in ``repr``) is set, valid ``turn_ttl_s``
      seconds (``RINGFLOW_TURN_TTL_S``); without a secret, as they are.
    """

    urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: float = 86400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> IcePolicy:
        """The policy of ``settings.media_ice_servers`` and ``settings.turn_*``."""
        return cls(
            urls=tuple(settings.media_ice_servers),
            turn_urls=tuple(settings.turn_urls),
            turn_secret=settings.turn_secret,
            turn_ttl_s=settings.turn_ttl_s,
        )

    def servers(self, party_key: str, now: float | None = None) -> IceServers:
        """The ICE servers of ``party_key`` (``Party.key()``, or :data:`BRIDGE_PARTY_KEY`) at
        ``now`` (Unix time, seconds; default: the clock): the TURN entry first (aiortc uses
        the first TURN server it finds, RFC 8445 leaves the order to the agent), then the
        ``urls`` entry. Nothing configured: no entry and no expiry. The secret itself is
        never in the result. Raises ``ValueError`` for an empty ``party_key`` when a
        credential is due."""
        servers: list[IceServer] = []
        expires_at = None
        if self.turn_urls:
            if self.turn_secret:
                cred = turn_credential(self.turn_secret, party_key, self.turn_ttl_s, now)
                servers.append(
                    IceServer(urls=list(self.turn_urls), username=cred.username, credential=cred.credential)
                )
                expires_at = datetime.fromtimestamp(cred.expires_at, UTC)
            else:
                servers.append(IceServer(urls=list(self.turn_urls)))
        if self.urls:
            servers.append(IceServer(urls=list(self.urls)))
        return IceServers(ice_servers=servers, expires_at=expires_at)


def ice_servers(settings: Settings, party_key: str, now: float | None = None) -> IceServers:
    """``IcePolicy.from_settings(settings).servers(party_key, now)``: the ICE servers of a
    party under ``settings`` (see :class:`IcePolicy`)."""
    return IcePolicy.from_settings(settings).servers(party_key, now)

"""ICE servers with ephemeral TURN credentials (``ringflow/ice.py``; draft-uberti-behave-turn-rest-00
section 2.2, coturn ``use-auth-secret``), without a stack:

- the credential: ``"<expiry>:<party key>"`` and base64 HMAC-SHA1 of it under the secret,
  checked against a hand-written RFC 2104 HMAC and a vector computed with ``openssl dgst``;
- the list: TURN (with a credential only when a secret is set) then STUN, nothing when
  nothing is configured, the secret in no output;
- the bridge's own ``RTCConfiguration`` carries username and credential;
- ``GET /v1/media/ice-servers``: party token required, the ``RTCIceServer[]`` shape, the
  expiry, ``no-store``, no secret (the app is driven without its lifespan, as
  tests/test_openapi.py does; for the 200s the party dependency checks the token without
  its tenant lookup in PostgreSQL).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, get_args

import pytest
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.testclient import TestClient

from api import tokens
from api.app import create_app
from api.deps import PartyDep, SettingsDep, party_bearer, party_from_token, unauthenticated
from media.network import MediaNetwork
from ringflow.agent import to_rtc_ice_servers
from ringflow.cli import SECRET_SETTINGS
from ringflow.contracts.common import Party, PartyKind
from ringflow.ice import BRIDGE_PARTY_KEY, IcePolicy, ice_servers, turn_credential
from ringflow.settings import Settings

SECRET = "north-0123456789-shared-with-coturn"
TURN = ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]
STUN = ["stun:turn.example.com:3478"]
NOW = 1_700_000_000.0
ALICE = Party(kind=PartyKind.USER, id="alice")


def rfc2104_hmac_sha1(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA1 written out (RFC 2104 section 2), independent of the ``hmac`` module."""
    block = 64
    if len(key) > block:
        key = hashlib.sha1(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha1(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha1(bytes(b ^ 0x5C for b in key) + inner).digest()


def test_credential_is_the_turn_rest_api_scheme() -> None:
    cred = turn_credential(SECRET, "user:alice", 86400, now=NOW)
    assert cred.expires_at == int(NOW) + 86400
    assert cred.username == f"{int(NOW) + 86400}:user:alice"
    # coturn reads the expiry before the first ':' (rest-api-separator), the rest is the party
    expiry, _, party = cred.username.partition(":")
    assert (int(expiry), party) == (cred.expires_at, "user:alice")
    expected = base64.b64encode(rfc2104_hmac_sha1(SECRET.encode(), cred.username.encode())).decode()
    assert cred.credential == expected
    # printf '%s' 1700086400:user:alice | openssl dgst -sha1 -hmac north -binary | base64
    assert turn_credential("north", "user:alice", 86400, now=NOW).credential == "y+rBsHTREmteImSV4S0hMEypm8s="
    # a fraction of a second never makes the expiry earlier than now + ttl - 1
    assert turn_credential(SECRET, "user:alice", 60, now=NOW + 0.9).expires_at == int(NOW) + 60
    # the clock by default
    before = time.time()
    assert before + 59 <= turn_credential(SECRET, "device:LOBBY-1", 60).expires_at <= time.time() + 60


@pytest.mark.parametrize(
    ("secret", "key", "ttl"), [("", "user:a", 60), (SECRET, "", 60), (SECRET, "user:a", 0)]
)
def test_credential_refuses_nonsense(secret: str, key: str, ttl: float) -> None:
    with pytest.raises(ValueError):
        turn_credential(secret, key, ttl)


def test_servers_turn_with_credentials_then_stun() -> None:
    policy = IcePolicy(urls=tuple(STUN), turn_urls=tuple(TURN), turn_secret=SECRET, turn_ttl_s=600)
    got = policy.servers("device:LOBBY-1", now=NOW)
    turn, stun = got.model_dump(mode="json")["ice_servers"]
    assert turn["urls"] == TURN and turn["username"] == f"{int(NOW) + 600}:device:LOBBY-1"
    assert turn["credential"] == turn_credential(SECRET, "device:LOBBY-1", 600, now=NOW).credential
    assert stun == {"urls": STUN}  # no username/credential keys at all (a browser wants none)
    assert got.expires_at == datetime.fromtimestamp(int(NOW) + 600, UTC)
    assert SECRET not in got.model_dump_json() and SECRET not in repr(policy)
    # each party its own username and credential
    other = policy.servers("user:alice", now=NOW).ice_servers[0]
    assert other.username == f"{int(NOW) + 600}:user:alice" and other.credential != turn["credential"]


def test_no_secret_no_credential_and_nothing_configured_nothing() -> None:
    got = IcePolicy(urls=tuple(STUN), turn_urls=tuple(TURN)).servers("user:alice", now=NOW)
    assert got.model_dump(mode="json") == {
        "ice_servers": [{"urls": TURN}, {"urls": STUN}],
        "expires_at": None,
    }
    assert IcePolicy().servers("user:alice").model_dump(mode="json") == {
        "ice_servers": [],
        "expires_at": None,
    }
    assert IcePolicy(turn_secret=SECRET).servers("user:alice").ice_servers == []  # a secret alone: nothing
    assert ice_servers(Settings(), "user:alice").ice_servers == []  # the defaults: host candidates only


def test_settings_and_their_masking() -> None:
    s = Settings(turn_urls=TURN, turn_secret=SECRET, turn_ttl_s=3600)
    assert IcePolicy.from_settings(s) == IcePolicy(
        urls=(), turn_urls=tuple(TURN), turn_secret=SECRET, turn_ttl_s=3600
    )
    assert Settings().turn_ttl_s == 86400 and Settings().turn_secret == ""
    assert "turn_secret" in SECRET_SETTINGS
    with pytest.raises(ValueError):
        Settings(turn_ttl_s=10)  # shorter than a minute: a call could not even start on it


def test_bridge_uses_turn_only_when_told() -> None:
    settings = Settings(turn_urls=TURN[:1], turn_secret=SECRET, media_ice_servers=STUN)
    [stun] = MediaNetwork.from_settings(settings).rtc_configuration().iceServers or []
    assert stun.urls == STUN and stun.username is None


def test_bridge_rtc_configuration_carries_the_credential() -> None:
    settings = Settings(
        turn_urls=TURN[:1], turn_secret=SECRET, media_ice_servers=STUN, media_bridge_turn=True
    )
    network = MediaNetwork.from_settings(settings)
    turn, stun = network.rtc_configuration().iceServers or []
    assert turn.urls == TURN[:1] and turn.username and turn.username.endswith(f":{BRIDGE_PARTY_KEY}")
    expected = base64.b64encode(rfc2104_hmac_sha1(SECRET.encode(), turn.username.encode())).decode()
    assert turn.credential == expected
    assert stun.urls == STUN and stun.username is None and stun.credential is None
    assert SECRET not in repr(network)
    assert MediaNetwork().rtc_configuration().iceServers == []  # never None (aiortc's public STUN)
    # the agent's conversion of the API's JSON is the same
    [agent_turn] = to_rtc_ice_servers(
        [{"urls": TURN[:1], "username": turn.username, "credential": turn.credential}]
    )
    assert (agent_turn.urls, agent_turn.username, agent_turn.credential) == (
        turn.urls,
        turn.username,
        turn.credential,
    )
    assert to_rtc_ice_servers([]) == []


def app_without_database(settings: Settings) -> FastAPI:
    """The API with ``settings``, driven without its lifespan (no PostgreSQL, no Temporal: the
    route needs neither); party tokens checked for signature and expiry only (the tenant's
    state lives in PostgreSQL)."""
    app = create_app(settings)

    def party_of_token(
        settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(party_bearer)]
    ) -> Party:
        if creds is None:
            raise unauthenticated("missing bearer token")
        return party_from_token(creds.credentials, settings)

    app.dependency_overrides[get_args(PartyDep)[1].dependency] = party_of_token
    return app


@pytest.fixture
def api() -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(api_key="test-ice-key", turn_urls=TURN, turn_secret=SECRET, media_ice_servers=STUN)
    # No ``with``: the lifespan (PostgreSQL pool, Temporal client) never runs.
    yield TestClient(app_without_database(settings), base_url="http://127.0.0.1:8080"), settings


def test_route_needs_a_party_token() -> None:
    settings = Settings(api_key="test-ice-key", turn_urls=TURN, turn_secret=SECRET)
    http = TestClient(create_app(settings), base_url="http://127.0.0.1:8080")  # the real dependency
    for headers in ({}, {"X-API-Key": settings.api_key}, {"Authorization": "Bearer nonsense"}):
        r = http.get("/v1/media/ice-servers", headers=headers)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        assert SECRET not in r.text


def test_route_gives_the_party_its_own_credential(api: tuple[TestClient, Settings]) -> None:
    http, settings = api
    token, _ = tokens.issue(ALICE, settings.token_secret, 60)
    before = int(time.time())
    r = http.get("/v1/media/ice-servers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert SECRET not in r.text
    doc = r.json()
    turn, stun = doc["ice_servers"]
    assert stun == {"urls": STUN}
    assert set(turn) == {"urls", "username", "credential"} and turn["urls"] == TURN
    expiry, _, party = turn["username"].partition(":")
    assert party == ALICE.key() and before + 86400 <= int(expiry) <= int(time.time()) + 86400
    assert datetime.fromisoformat(doc["expires_at"]) == datetime.fromtimestamp(int(expiry), UTC)
    expected = base64.b64encode(rfc2104_hmac_sha1(SECRET.encode(), turn["username"].encode())).decode()
    assert turn["credential"] == expected


def test_route_without_servers_is_empty() -> None:
    http = TestClient(
        app_without_database(Settings(api_key="test-ice-key")), base_url="http://127.0.0.1:8080"
    )
    token, _ = tokens.issue(ALICE, Settings().token_secret, 60)
    r = http.get("/v1/media/ice-servers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == {"ice_servers": [], "expires_at": None}

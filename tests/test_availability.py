"""A resident's own do-not-disturb (issue 11 item 5): ``/v1/me/do-not-disturb`` through the
real app (PostgreSQL, Temporal dev server), and the ring plan skipping a resident whose
do-not-disturb is active (errCode 1003, reason ``dnd: ...``) until it expires or is switched
off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport
from temporalio.testing import WorkflowEnvironment

from activities.directory import precall_checks
from api.app import create_app
from ringflow.contracts.activities import PrecallInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.settings import Settings

KEY = "test-api-key-0123"
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
BOB = Party(kind=PartyKind.USER, id="bob")


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, db_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        database_url=db_dsn,
        api_key=KEY,
        db_pool_max=4,
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=ASGITransport(manager.app), base_url="http://test", headers={"X-API-Key": KEY}
        ) as client,
    ):
        r = await client.post(
            "/v1/devices",
            json={"sn": "LOBBY-1", "name": "Lobby", "voip_token_expires_at": "2099-01-01T00:00:00Z"},
        )
        assert r.status_code == 201, r.text
        assert (await client.post("/v1/users", json={"id": "bob", "name": "Bob"})).status_code == 201
        r = await client.post(
            "/v1/authorizations", json={"user_id": "bob", "target_kind": "device", "target_id": "LOBBY-1"}
        )
        assert r.status_code in (200, 201), r.text
        yield client


async def _token(api: httpx.AsyncClient, party: Party) -> dict[str, str]:
    r = await api.post("/v1/tokens", json={"party": party.model_dump(mode="json")})
    assert r.status_code in (200, 201), r.text
    return {"Authorization": f"Bearer {r.json()['token']}", "X-API-Key": ""}


async def _check(db_dsn: str) -> tuple[ErrCode, str | None]:
    conn = await asyncpg.connect(db_dsn)
    try:
        res = await precall_checks(conn, PrecallInput(caller=LOBBY, listener=BOB))
    finally:
        await conn.close()
    return ErrCode(res.err_code if res.err_code is not None else ErrCode.OK), res.reason


async def test_do_not_disturb_switch_expiry_and_ring_plan(api: httpx.AsyncClient, db_dsn: str) -> None:
    bob = await _token(api, BOB)
    r = await api.get("/v1/me/do-not-disturb", headers=bob)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert (await _check(db_dsn))[0] == ErrCode.OK

    # on, no expiry: calls skip bob with 1003, reason dnd
    r = await api.put("/v1/me/do-not-disturb", json={"until": None}, headers=bob)
    assert r.status_code == 200 and r.json()["active"] and r.json()["own"] and r.json()["until"] is None
    code, reason = await _check(db_dsn)
    assert code == ErrCode.DO_NOT_DISTURB and reason is not None and reason.startswith("dnd:"), reason

    # until a time: shown, and once past it is off without anyone clearing it
    until = datetime.now(UTC) + timedelta(hours=1)
    r = await api.put("/v1/me/do-not-disturb", json={"until": until.isoformat()}, headers=bob)
    assert r.status_code == 200 and datetime.fromisoformat(r.json()["until"]) == until
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE user_availability SET dnd_since = now() - interval '2 hours', "
            "dnd_until = now() - interval '1 second' WHERE user_id = 'bob'"
        )
    finally:
        await conn.close()
    assert (await api.get("/v1/me/do-not-disturb", headers=bob)).json()["active"] is False
    assert (await _check(db_dsn))[0] == ErrCode.OK

    # off
    assert (await api.put("/v1/me/do-not-disturb", json={}, headers=bob)).json()["active"] is True
    r = await api.delete("/v1/me/do-not-disturb", headers=bob)
    assert r.status_code == 200 and r.json() == {**r.json(), "active": False, "own": False}
    assert (await _check(db_dsn))[0] == ErrCode.OK

    # the manager's switch shows as by_manager and stays after DELETE
    assert (await api.patch("/v1/users/bob", json={"do_not_disturb": True})).status_code == 200
    r = await api.delete("/v1/me/do-not-disturb", headers=bob)
    assert r.json()["active"] is True and r.json()["by_manager"] is True


async def test_do_not_disturb_problems(api: httpx.AsyncClient) -> None:
    bob = await _token(api, BOB)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    for until in (past, far):
        r = await api.put("/v1/me/do-not-disturb", json={"until": until}, headers=bob)
        assert r.status_code == 422 and r.json()["type"] == "/problems/validation", r.text
    r = await api.put("/v1/me/do-not-disturb", json={"until": "2030-01-01T00:00:00"}, headers=bob)
    assert r.status_code == 422  # a time without its zone is refused
    door = await _token(api, LOBBY)
    r = await api.get("/v1/me/do-not-disturb", headers=door)
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden" and r.json()["errCode"] == 1016
    r = await api.get("/v1/me/do-not-disturb", headers={"X-API-Key": KEY})
    assert r.status_code == 401

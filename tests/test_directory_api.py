"""The directory REST API through the real app (lifespan: PostgreSQL pool, Temporal client, hub)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from ringflow.settings import Settings

KEY = "test-api-key-0123"
TABLES = ("device_groups", "devices", "users", "units", "unit_residents", "authorizations")


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
        yield client


async def _counts(db_dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_dsn)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await conn.close()


def _problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    return body


async def _seed(api: httpx.AsyncClient) -> None:
    for body in (
        {"id": "main-entrance", "name": "Main entrance"},
        {"id": "side", "name": "Side gate"},
    ):
        assert (await api.post("/v1/device-groups", json=body)).status_code == 201
    r = await api.post(
        "/v1/devices",
        json={
            "sn": "LOBBY-1",
            "name": "Maple Court Lobby",
            "group_id": "main-entrance",
            "voip_token_expires_at": "2099-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    for uid in ("alice", "bob"):
        assert (await api.post("/v1/users", json={"id": uid, "name": uid.title()})).status_code == 201


async def test_wrong_or_missing_api_key_is_401(api: httpx.AsyncClient) -> None:
    body = _problem(
        await api.get("/v1/devices", headers={"X-API-Key": "wrong-key-123"}), 401, "unauthenticated"
    )
    assert body["errCode"] == 1011
    request = api.build_request("POST", "/v1/users", json={"id": "x", "name": "X"})
    del request.headers["X-API-Key"]
    _problem(await api.send(request), 401, "unauthenticated")
    _problem(await api.get("/v1/users/x"), 404, "not-found")  # the refused request wrote nothing


async def test_device_lifecycle(api: httpx.AsyncClient, db_dsn: str) -> None:
    await _seed(api)
    r = await api.get("/v1/devices/LOBBY-1")
    assert r.status_code == 200 and r.json()["name"] == "Maple Court Lobby"
    assert [d["sn"] for d in (await api.get("/v1/devices", params={"group_id": "main-entrance"})).json()] == [
        "LOBBY-1"
    ]
    _problem(await api.post("/v1/devices", json={"sn": "LOBBY-1", "name": "dup"}), 409, "device-exists")
    body = _problem(await api.get("/v1/devices/NOPE"), 404, "not-found")
    assert body["errCode"] == 1008 and body["kind"] == "device"

    # PUT: create 201, replace 200; moving groups needs force_add
    r = await api.put("/v1/devices/GARAGE-1", json={"sn": "GARAGE-1", "name": "Garage", "group_id": "side"})
    assert r.status_code == 201
    r = await api.put("/v1/devices/GARAGE-1", json={"sn": "GARAGE-1", "name": "Garage 2", "group_id": "side"})
    assert r.status_code == 200 and r.json()["name"] == "Garage 2"
    moved = {"sn": "GARAGE-1", "name": "Garage 2", "group_id": "main-entrance"}
    _problem(await api.put("/v1/devices/GARAGE-1", json=moved), 409, "device-in-another-group")
    r = await api.put("/v1/devices/GARAGE-1", json=moved, params={"force_add": "true"})
    assert r.status_code == 200 and r.json()["group_id"] == "main-entrance"
    _problem(await api.put("/v1/devices/OTHER", json={"sn": "GARAGE-1", "name": "x"}), 422, "validation")

    r = await api.patch("/v1/devices/GARAGE-1", json={"talk_quota_s": 0, "auto_answer": True})
    assert r.status_code == 200 and (r.json()["talk_quota_s"], r.json()["auto_answer"]) == (0, True)
    _problem(await api.patch("/v1/devices/GARAGE-1", json={"talk_quota_s": -5}), 422, "validation")
    r = await api.patch("/v1/devices/GARAGE-1", json={"actions": ["open_door", "turn_on_light"]})
    assert r.status_code == 200 and r.json()["actions"] == ["open_door", "turn_on_light"]
    assert (await api.get("/v1/devices/GARAGE-1")).json()["actions"] == ["open_door", "turn_on_light"]
    _problem(await api.patch("/v1/devices/GARAGE-1", json={"actions": ["Open Door"]}), 422, "validation")
    _problem(await api.patch("/v1/devices/NOPE", json={"name": "x"}), 404, "not-found")

    assert (await api.delete("/v1/devices/GARAGE-1")).status_code == 204
    _problem(await api.delete("/v1/devices/GARAGE-1"), 404, "not-found")
    assert (await _counts(db_dsn))["devices"] == 1

    # two concurrent creates of one sn: exactly one wins, the other is a 409 problem
    same = {"sn": "RACE-1", "name": "Race"}
    results = await asyncio.gather(api.post("/v1/devices", json=same), api.post("/v1/devices", json=same))
    assert sorted(r.status_code for r in results) == [201, 409]


async def test_group_membership_and_authorizations(api: httpx.AsyncClient) -> None:
    await _seed(api)
    r = await api.post(
        "/v1/authorizations", json={"user_id": "alice", "target_kind": "group", "target_id": "main-entrance"}
    )
    assert r.status_code == 201
    r = await api.post(
        "/v1/authorizations", json={"user_id": "alice", "target_kind": "group", "target_id": "main-entrance"}
    )
    assert r.status_code == 200
    r = await api.post(
        "/v1/authorizations", json={"user_id": "bob", "target_kind": "group", "target_id": "side"}
    )
    assert r.status_code == 201
    assert [u["id"] for u in (await api.get("/v1/devices/LOBBY-1/contacts")).json()] == ["alice"]
    assert [d["sn"] for d in (await api.get("/v1/users/alice/devices")).json()] == ["LOBBY-1"]

    # reference 1(1): force_add moves the device; alice (group main-entrance only) loses it
    _problem(
        await api.post("/v1/device-groups/side/devices", json={"sn": "LOBBY-1"}),
        409,
        "device-in-another-group",
    )
    r = await api.post("/v1/device-groups/side/devices", json={"sn": "LOBBY-1", "force_add": True})
    assert r.status_code == 200 and r.json()["devices"] == ["LOBBY-1"]
    assert (await api.get("/v1/device-groups/main-entrance")).json()["devices"] == []
    assert [u["id"] for u in (await api.get("/v1/devices/LOBBY-1/contacts")).json()] == ["bob"]
    assert (await api.get("/v1/users/alice/devices")).json() == []

    body = _problem(
        await api.post("/v1/device-groups/side/devices", json={"sn": "GHOST"}), 422, "unknown-reference"
    )
    assert (body["kind"], body["id"]) == ("device", "GHOST")
    _problem(await api.post("/v1/device-groups/nope/devices", json={"sn": "LOBBY-1"}), 404, "not-found")
    assert (await api.delete("/v1/device-groups/side/devices/LOBBY-1")).status_code == 204
    _problem(await api.delete("/v1/device-groups/side/devices/LOBBY-1"), 404, "not-found")

    assert (await api.delete("/v1/authorizations/bob/group/side")).status_code == 204
    _problem(await api.delete("/v1/authorizations/bob/group/side"), 404, "not-found")
    _problem(await api.delete("/v1/authorizations/bob/building/side"), 422, "validation")
    listed = (await api.get("/v1/authorizations", params={"user_id": "alice"})).json()
    assert [(a["target_kind"], a["target_id"]) for a in listed] == [("group", "main-entrance")]
    _problem(await api.get("/v1/users/ghost/devices"), 404, "not-found")


async def test_units_and_users(api: httpx.AsyncClient, db_dsn: str) -> None:
    await _seed(api)
    unit = {
        "id": "101",
        "name": "Unit 101",
        "residents": ["bob", "alice"],
        "policy": {"strategy": "sequential", "ring_timeout_s": 30, "fallback_user_id": "alice"},
    }
    r = await api.post("/v1/units", json=unit)
    assert r.status_code == 201 and r.json()["residents"] == ["bob", "alice"]
    _problem(await api.post("/v1/units", json=unit), 409, "unit-exists")
    r = await api.put("/v1/units/101", json={**unit, "residents": ["alice", "bob"]})
    assert r.status_code == 200 and r.json()["residents"] == ["alice", "bob"]
    assert (await api.get("/v1/units/101")).json()["policy"]["ring_timeout_s"] == 30
    assert [u["id"] for u in (await api.get("/v1/units")).json()] == ["101"]

    r = await api.patch("/v1/users/bob", json={"do_not_disturb": True})
    assert r.status_code == 200 and r.json() == {**r.json(), "name": "Bob", "do_not_disturb": True}
    _problem(await api.delete("/v1/users/alice"), 409, "user-in-use")  # the unit's fallback
    assert (await api.delete("/v1/users/bob")).status_code == 204
    assert (await api.get("/v1/units/101")).json()["residents"] == ["alice"]
    assert (await api.delete("/v1/units/101")).status_code == 204
    _problem(await api.get("/v1/units/101"), 404, "not-found")
    assert (await _counts(db_dsn))["unit_residents"] == 0


async def test_failed_requests_write_nothing(api: httpx.AsyncClient, db_dsn: str) -> None:
    await _seed(api)
    before = await _counts(db_dsn)
    # a resident that is not a user: 422, no unit and no residents written
    body = _problem(
        await api.post("/v1/units", json={"id": "102", "name": "Unit 102", "residents": ["alice", "ghost"]}),
        422,
        "unknown-reference",
    )
    assert (body["kind"], body["id"], body["field"], body["errCode"]) == ("user", "ghost", "residents", 1008)
    _problem(
        await api.put("/v1/units/102", json={"id": "102", "name": "U", "residents": ["alice", "alice"]}),
        422,
        "validation",
    )
    # a missing group, a missing authorization target
    _problem(
        await api.post("/v1/devices", json={"sn": "X-1", "name": "X", "group_id": "nope"}),
        422,
        "unknown-reference",
    )
    _problem(
        await api.post(
            "/v1/authorizations", json={"user_id": "alice", "target_kind": "device", "target_id": "NOPE"}
        ),
        422,
        "unknown-reference",
    )
    # malformed bodies
    r = await api.post("/v1/devices", content=b"{not json", headers={"content-type": "application/json"})
    _problem(r, 422, "validation")
    body = _problem(await api.post("/v1/devices", json={"sn": "bad sn!", "name": ""}), 422, "validation")
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "sn"), ("body", "name")}
    _problem(await api.post("/v1/users", json={"id": "u", "name": "U", "admin": True}), 422, "validation")
    _problem(await api.get("/v1/devices/bad%20sn"), 422, "validation")
    assert await _counts(db_dsn) == before

"""Issue 10 items 1-2 through the real API (uvicorn), a real worker, the Temporal dev server and
PostgreSQL, in a tenant (``acme``) with two sites in two time zones:

- presence across the sites: bob lives in north/101 and south/201; a ringing call in one site
  makes him ``in_call`` (GET by the backend and by himself) and busy for the other site's call;
  ``away`` (his app, with an expiry; the backend) skips him with errCode 1017 and pushes
  ``presence`` to his own socket;
- schedules: a person's quiet hours (backend and app), in the site's time zone of the unit
  called, the unit's quiet hours from its stored policy, ring-through-DND by device group,
  checked by the real pre-call checks at given instants and by a real call;
- the backend's do-not-disturb for any user of its tenant; scopes and other users refused.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest_asyncio
import websockets
from temporalio.testing import WorkflowEnvironment

from activities.directory import precall_checks
from api import tokens
from ringflow.contracts.activities import PrecallInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import Scope
from tests.test_directory_activities import device, user
from tests.test_push import serve_with_worker
from tests.test_tenancy import frames, put, wait_phase

TENANT = "acme"
FUTURE = (datetime.now(UTC) + timedelta(days=365)).isoformat()
BOB = Party(kind=PartyKind.USER, id="bob")


@pytest_asyncio.fixture
async def world(db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[dict[str, Any]]:
    """The API and a worker; tenant acme with sites north (Europe/Berlin) and south
    (America/New_York), a door in each, bob resident of north/101 (with alice) and south/201
    (with erin); a full backend key and a read-only one."""
    async with serve_with_worker(db_dsn, dev_env, task_queue) as (settings, _, root):
        base = str(root.base_url)
        assert (await root.post("/v1/tenants", json={"id": TENANT, "name": "Acme"})).status_code == 201
        keys = {}
        for name, scopes in (
            ("full", [s.value for s in Scope if s is not Scope.TENANTS_ADMIN]),
            ("reader", [Scope.DIRECTORY_READ.value]),
        ):
            r = await root.post("/v1/keys", json={"tenant_id": TENANT, "scopes": scopes, "name": name})
            assert r.status_code == 201, r.text
            keys[name] = r.json()["key"]
        async with (
            httpx.AsyncClient(base_url=base, headers={"X-API-Key": keys["full"]}, timeout=30) as http,
            httpx.AsyncClient(base_url=base, headers={"X-API-Key": keys["reader"]}, timeout=30) as reader,
        ):
            await put(http, "/v1/sites/north", {"id": "north", "name": "North", "time_zone": "Europe/Berlin"})
            await put(
                http, "/v1/sites/south", {"id": "south", "name": "South", "time_zone": "America/New_York"}
            )
            await put(http, "/v1/device-groups/desk", {"id": "desk", "name": "Concierge desk"})
            for sn, site in (("N-DOOR", "north"), ("S-DOOR", "south"), ("DESK", "south")):
                body = {"sn": sn, "site_id": site, "name": f"{sn} door", "voip_token_expires_at": FUTURE}
                await put(http, f"/v1/devices/{sn}", body | ({"group_id": "desk"} if sn == "DESK" else {}))
            for uid in ("alice", "bob", "erin"):
                await put(http, f"/v1/users/{uid}", {"id": uid, "name": uid.title()})
                for sn in ("N-DOOR", "S-DOOR", "DESK"):
                    r = await http.post(
                        "/v1/authorizations",
                        json={"user_id": uid, "target_kind": "device", "target_id": sn},
                    )
                    assert r.status_code in (200, 201), r.text
            await put(
                http,
                "/v1/units/101",
                {"id": "101", "site_id": "north", "name": "N 101", "residents": ["bob", "alice"]},
            )
            await put(
                http,
                "/v1/units/201",
                {"id": "201", "site_id": "south", "name": "S 201", "residents": ["bob", "erin"]},
            )
            yield {"settings": settings, "http": http, "reader": reader, "port": settings.api_port}


def bearer(world: dict[str, Any], uid: str) -> dict[str, str]:
    token, _ = tokens.issue(user(uid), world["settings"].token_secret, 3600, tenant_id=TENANT)
    return {"Authorization": f"Bearer {token}", "X-API-Key": ""}


async def place(http: httpx.AsyncClient, door: str, unit: str) -> str:
    call_id = f"press-{uuid.uuid4().hex[:8]}"
    r = await http.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": door}, "unit_id": unit, "room_type": "voice"},
        headers={"Idempotency-Key": call_id},
    )
    assert r.status_code == 201, r.text
    return call_id


async def attempts_when(http: httpx.AsyncClient, call_id: str, n: int) -> list[dict[str, Any]]:
    """The call's attempts once it has ``n`` of them and the last is past initiate."""
    view: dict[str, Any] = {}
    for _ in range(300):
        view = (await http.get(f"/v1/calls/{call_id}")).json()
        atts = view.get("attempts", [])
        if len(atts) >= n and atts[n - 1]["phase"] != "initiate":
            return list(atts)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{call_id}: no {n} attempts: {view}")


async def test_presence_across_two_sites(world: dict[str, Any], db_dsn: str) -> None:
    http: httpx.AsyncClient = world["http"]
    reader: httpx.AsyncClient = world["reader"]
    bob = bearer(world, "bob")
    r = await reader.get("/v1/users/bob/presence")
    assert r.status_code == 200 and r.json()["status"] == "available", r.text

    # a ringing call in north makes bob in_call, for the backend and for himself
    north = await place(http, "N-DOOR", "101")
    assert (await attempts_when(http, north, 1))[0]["listener"] == {"kind": "user", "id": "bob"}
    r = await reader.get("/v1/users/bob/presence")
    assert r.json() | {"away_since": None} == {
        "user_id": "bob",
        "status": "in_call",
        "away": False,
        "away_since": None,
        "away_until": None,
        "in_call": True,
        "call_id": north,
    }
    assert (await http.get("/v1/me/presence", headers=bob)).json()["status"] == "in_call"
    assert (await http.get("/v1/users/bob/presence", headers=bob)).json()["call_id"] == north
    # the same person in the other site: south's call finds him busy and rings erin
    south = await place(http, "S-DOOR", "201")
    atts = await attempts_when(http, south, 2)
    assert [(a["listener"]["id"], a["outcome"], a["err_code"]) for a in atts[:1]] == [("bob", "busy", None)]
    assert atts[1]["listener"]["id"] == "erin" and atts[1]["phase"] == "wait"
    for c in (north, south):
        assert (await http.post(f"/v1/calls/{c}/force-hang-up", json={})).status_code == 200
        await wait_phase(http, c, "ended")
    assert (await reader.get("/v1/users/bob/presence")).json()["status"] == "available"

    # away from his app, with an expiry: pushed to his own socket; calls skip him (1017)
    push = f"ws://127.0.0.1:{world['port']}/v1/push?token=" + bob["Authorization"].removeprefix("Bearer ")
    async with websockets.connect(push) as ws:
        await frames(ws, 0.3)
        until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        r = await http.put(
            "/v1/me/presence", json={"status": "away", "until": until.isoformat()}, headers=bob
        )
        assert r.status_code == 200 and r.json()["status"] == "away", r.text
        got = [f for f in await frames(ws) if f["type"] == "presence"]
        assert len(got) == 1 and got[0]["payload"]["status"] == "away" and got[0]["call_id"] == ""
        assert datetime.fromisoformat(got[0]["payload"]["away_until"]) == until
        south = await place(http, "S-DOOR", "201")
        atts = await attempts_when(http, south, 2)
        assert (atts[0]["outcome"], atts[0]["err_code"]) == ("skipped", int(ErrCode.LISTENER_AWAY))
        assert atts[0]["reason"] == f"away: user 'bob' is away until {until.isoformat()}"
        assert (await http.post(f"/v1/calls/{south}/force-hang-up", json={})).status_code == 200
        # the backend sets him available: pushed too
        r = await http.put("/v1/users/bob/presence", json={"status": "available"})
        assert r.status_code == 200 and r.json()["status"] == "available"
        got = [f for f in await frames(ws) if f["type"] == "presence"]
        assert [f["payload"]["status"] for f in got] == ["available"]
        await ws.send(json.dumps({"ack": [f["id"] for f in got]}))

    # an expired away is off without anyone clearing it
    r = await http.put("/v1/users/bob/presence", json={"status": "away", "until": until.isoformat()})
    assert r.json()["away"] is True
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE user_availability SET away_since = now() - interval '2 hours', "
            "away_until = now() - interval '1 second' WHERE user_id = $1",
            f"{TENANT}~bob",
        )
    finally:
        await conn.close()
    assert (await reader.get("/v1/users/bob/presence")).json()["status"] == "available"

    # refused: another resident's token, the read-only key writing, in_call set by hand, unknown user
    r = await http.get("/v1/users/bob/presence", headers=bearer(world, "alice"))
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
    assert (await reader.put("/v1/users/bob/presence", json={"status": "away"})).status_code == 403
    assert (await http.put("/v1/users/bob/presence", json={"status": "in_call"})).status_code == 422
    far = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    assert (
        await http.put("/v1/users/bob/presence", json={"status": "away", "until": far})
    ).status_code == 422
    r = await http.get("/v1/users/ghost/presence")
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"


async def _check(
    pool: asyncpg.Pool,
    at: datetime,
    caller: str,
    listener: str,
    unit: str | None = None,
    site: str | None = None,
) -> tuple[ErrCode, str | None]:
    """The real pre-call checks at instant ``at`` for a call to ``unit`` of ``site``."""
    async with pool.acquire() as conn:
        res = await precall_checks(
            conn,
            PrecallInput(
                caller=device(caller),
                listener=user(listener),
                tenant_id=TENANT,
                at=at,
                unit_id=unit,
                site_id=site,
            ),
        )
    return ErrCode(res.err_code), res.reason


async def test_schedules_backend_dnd_and_ring_through(world: dict[str, Any], db_pool: asyncpg.Pool) -> None:
    http: httpx.AsyncClient = world["http"]
    reader: httpx.AsyncClient = world["reader"]
    # bob's own weekday nights, set by the backend; erin sets hers from her app
    weeknights = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "22:00", "end": "06:30"}
    r = await http.put("/v1/users/bob/quiet-hours", json={"rules": [weeknights]})
    assert r.status_code == 200 and r.json() == {"rules": [weeknights | {"time_zone": None}]}, r.text
    assert (await reader.get("/v1/users/bob/quiet-hours")).json() == r.json()
    erin = bearer(world, "erin")
    r = await http.put(
        "/v1/me/quiet-hours",
        json={"rules": [{"days": ["sun"], "start": "13:00", "end": "15:00"}]},
        headers=erin,
    )
    assert r.status_code == 200 and r.json()["rules"][0]["start"] == "13:00"
    for bad in (
        {"start": "22:00", "end": "22:00"},
        {"start": "22:00", "end": "06:00", "time_zone": "Nowhere/Else"},
    ):
        r = await http.put("/v1/users/bob/quiet-hours", json={"rules": [bad]})
        assert r.status_code == 422 and r.json()["type"] == "/problems/validation", r.text
    assert (await reader.put("/v1/users/bob/quiet-hours", json={"rules": []})).status_code == 403

    # Monday 23:00 in Berlin = Monday 17:00 in New York: the site of the unit called decides
    monday = datetime(2026, 12, 7, 23, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    code, reason = await _check(db_pool, monday, "N-DOOR", "bob", "101", "north")
    assert code == ErrCode.DO_NOT_DISTURB and reason is not None
    assert reason.startswith("dnd: user 'bob' quiet hours Mon 22:00-06:30 Europe/Berlin"), reason
    assert (await _check(db_pool, monday, "S-DOOR", "bob", "201", "south"))[0] == ErrCode.OK
    ny_night = datetime(2026, 12, 7, 23, 0, tzinfo=ZoneInfo("America/New_York"))
    code, reason = await _check(db_pool, ny_night, "S-DOOR", "bob", "201", "south")
    assert code == ErrCode.DO_NOT_DISTURB and "America/New_York" in (reason or ""), reason

    # the unit's quiet hours (its stored policy) for its residents; the desk's group rings through
    unit = {
        "id": "201",
        "site_id": "south",
        "name": "S 201",
        "residents": ["bob", "erin"],
        "policy": {
            "quiet_hours": [{"days": ["sat", "sun"], "start": "09:00", "end": "11:00"}],
            "ring_through_dnd": {"groups": ["desk"]},
        },
    }
    await put(http, "/v1/units/201", unit)
    saturday = datetime(2026, 12, 12, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    code, reason = await _check(db_pool, saturday, "S-DOOR", "erin", "201", "south")
    assert (code, reason) == (
        ErrCode.DO_NOT_DISTURB,
        "dnd: unit '201' quiet hours Sat 09:00-11:00 America/New_York (until 2026-12-12T16:00:00+00:00)",
    )
    assert (await _check(db_pool, saturday, "DESK", "erin", "201", "south"))[0] == ErrCode.OK
    assert (await _check(db_pool, saturday, "S-DOOR", "alice", "201", "south"))[
        0
    ] == ErrCode.OK  # not a resident

    # the backend's do-not-disturb for any user of its tenant; the resident sees it as their own
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    r = await http.put("/v1/users/alice/do-not-disturb", json={"until": until.isoformat()})
    assert r.status_code == 200 and r.json()["own"] is True, r.text
    assert (await http.get("/v1/me/do-not-disturb", headers=bearer(world, "alice"))).json()["active"] is True
    assert (await reader.delete("/v1/users/alice/do-not-disturb")).status_code == 403
    r = await http.get("/v1/users/alice/do-not-disturb", headers=bearer(world, "bob"))
    assert r.status_code == 403
    # a real call: bob away, alice in the backend's do-not-disturb: nobody to ring in north/101
    assert (await http.put("/v1/users/bob/presence", json={"status": "away"})).status_code == 200
    call_id = await place(http, "N-DOOR", "101")
    await wait_phase(http, call_id, "ended")
    view = (await http.get(f"/v1/calls/{call_id}")).json()
    assert [(a["listener"]["id"], a["err_code"]) for a in view["attempts"]] == [
        ("bob", int(ErrCode.LISTENER_AWAY)),
        ("alice", int(ErrCode.DO_NOT_DISTURB)),
    ]
    assert view["end_reason"] == "initiateFailed" and view["err_code"] == int(ErrCode.DO_NOT_DISTURB)
    ended = [e for e in view["events"] if e["name"] == "callEnded"]
    assert (
        ended
        and ended[0]["reason"] == f"dnd: user 'alice' switched do-not-disturb on until {until.isoformat()}"
    )
    r = await http.delete("/v1/users/alice/do-not-disturb")
    assert r.status_code == 200 and r.json()["active"] is False


async def test_a_stored_rule_this_machine_cannot_read_is_left_out(db_pool: asyncpg.Pool) -> None:
    """A rule whose zone this machine's tz database does not know (another host wrote it) is
    left out of the ring's checks instead of failing every ring of that person."""
    from ringflow.contracts.directory import UserIn
    from store import availability
    from store import directory as d

    async with db_pool.acquire() as conn:
        await d.put_user(conn, UserIn(id="bob", name="Bob"))
        rules = [
            {"days": ["mon"], "start": "22:00", "end": "07:00", "time_zone": "Atlantis/Lost"},
            {"days": ["tue"], "start": "22:00", "end": "07:00", "time_zone": None},
        ]
        await conn.execute(
            "INSERT INTO user_availability (user_id, quiet_hours) VALUES ('bob', $1::text::jsonb)",
            json.dumps(rules),
        )
        person = await availability.load_person(conn, "bob", tenant="default")
    assert person is not None and [r.days[0].value for r in person.quiet_hours] == ["tue"]

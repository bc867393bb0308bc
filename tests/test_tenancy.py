"""Issue 9 items 1, 2 and 5: tenants, scoped API keys, isolation, party tokens with their
tenant, dev secrets refused in production, per-tenant admission.

Two tenants (``acme`` and ``beta``) with the SAME directory ids (device LOBBY-1, users alice
and bob, unit 101) against the real API (uvicorn), the real worker and PostgreSQL:

- ``test_every_route_is_tenant_scoped``: every operation of the app's OpenAPI document (so a new
  route cannot skip the check; the routes that are not tenant-scoped are an explicit
  allow-list) is called with beta's key and with a beta party token, naming acme's resources:
  no answer contains acme's data, none is a 5xx, every read of an acme resource is 404 like an
  unknown id, and acme's directory and call are unchanged afterwards;
- the same call id in both tenants is two calls; each tenant's alice hears only her tenant's
  push; answering in one tenant leaves the other's call ringing;
- key rotation while calls run, expired key 401, missing scope 403, party token for an unknown
  user 404, a disabled tenant's key and token 401.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pydantic
import pytest
import pytest_asyncio
import websockets
from temporalio.testing import WorkflowEnvironment

from api.admission import Admission
from ringflow.contracts.directory import Building
from ringflow.contracts.tenancy import ALL_SCOPES, Scope
from ringflow.directory_load import LoadRefused, load_building
from ringflow.settings import Settings
from store import tenants as tenant_store
from tests.test_push import serve_with_worker

FUTURE = (datetime.now(UTC) + timedelta(days=365)).isoformat()
EXAMPLE_BUILDING = Path(__file__).resolve().parent.parent / "examples" / "building.yaml"
MARK = "ACME-SECRET"
"""In every name of acme's own resources: it must never appear in an answer to beta."""

# Routes that are deliberately not tenant-scoped: health, metrics, documentation, problem
# types, the web app's static files, and the platform administrator's tenant list (403 to a
# tenant key, checked below). Everything else in the OpenAPI document is swept.
NOT_TENANT_SCOPED = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/problems",
    "/problems/{slug}",
}


@dataclass
class Tenant:
    id: str
    key: str
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def stack(db_dsn: str, dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[dict[str, Any]]:
    """The API (uvicorn) and a real worker; tenants acme and beta with their keys and the same
    directory ids; acme also has resources only it has (names marked :data:`MARK`)."""
    async with serve_with_worker(db_dsn, dev_env, task_queue) as (settings, app, root):
        out: dict[str, Any] = {"settings": settings, "app": app, "root": root, "port": settings.api_port}
        for tid in ("acme", "beta"):
            r = await root.post("/v1/tenants", json={"id": tid, "name": tid.title()})
            assert r.status_code == 201, r.text
            scopes = sorted(s.value for s in ALL_SCOPES if s is not Scope.TENANTS_ADMIN)
            r = await root.post("/v1/keys", json={"tenant_id": tid, "scopes": scopes, "name": "backend"})
            assert r.status_code == 201, r.text
            key = r.json()["key"]
            http = httpx.AsyncClient(base_url=str(root.base_url), headers={"X-API-Key": key}, timeout=30)
            out[tid] = Tenant(tid, key, http)
            await directory(http, tid)
        await acme_only(out["acme"].http)
        yield out
        for tid in ("acme", "beta"):
            await out[tid].http.aclose()


async def put(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    r = await http.put(path, json=body)
    assert r.status_code in (200, 201), (path, r.text)


async def directory(http: httpx.AsyncClient, tid: str) -> None:
    """The same ids in every tenant; names say whose they are."""
    name = tid.title()
    await put(
        http,
        "/v1/devices/LOBBY-1",
        {"sn": "LOBBY-1", "name": f"{name} Lobby", "voip_token_expires_at": FUTURE, "actions": ["open_door"]},
    )
    for uid in ("alice", "bob"):
        await put(http, f"/v1/users/{uid}", {"id": uid, "name": f"{uid.title()} of {name}"})
        r = await http.post(
            "/v1/authorizations", json={"user_id": uid, "target_kind": "device", "target_id": "LOBBY-1"}
        )
        assert r.status_code in (200, 201), r.text
    await put(
        http,
        "/v1/units/101",
        {
            "id": "101",
            "name": f"{name} 101",
            "residents": ["alice", "bob"],
            "policy": {"strategy": "simultaneous"},
        },
    )


async def acme_only(http: httpx.AsyncClient) -> None:
    await put(http, "/v1/sites/a-site", {"id": "a-site", "name": f"{MARK} site", "time_zone": "Europe/Paris"})
    await put(http, "/v1/device-groups/a-group", {"id": "a-group", "name": f"{MARK} group"})
    await put(
        http,
        "/v1/devices/A-DOOR",
        {"sn": "A-DOOR", "name": f"{MARK} door", "voip_token_expires_at": FUTURE, "group_id": "a-group"},
    )
    await put(http, "/v1/users/a-user", {"id": "a-user", "name": f"{MARK} user"})
    r = await http.post(
        "/v1/authorizations", json={"user_id": "a-user", "target_kind": "device", "target_id": "A-DOOR"}
    )
    assert r.status_code == 201, r.text
    await put(http, "/v1/units/a-unit", {"id": "a-unit", "name": f"{MARK} unit", "residents": ["a-user"]})


def token_of(stack: dict[str, Any], tenant: str, user: str = "alice") -> str:
    from api import tokens
    from ringflow.contracts.common import Party, PartyKind

    token, _ = tokens.issue(
        Party(kind=PartyKind.USER, id=user), stack["settings"].token_secret, 3600, tenant_id=tenant
    )
    return token


async def wait_phase(
    http: httpx.AsyncClient, call_id: str, phase: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for _ in range(300):
        r = await http.get(f"/v1/calls/{call_id}", headers=headers or {})
        if r.status_code == 200:
            view = r.json()
            if view["phase"] == phase:
                return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"{call_id} never reached {phase}: {view}")


async def frames(ws: Any, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), quiet_s)))
        except TimeoutError:
            return out


# ---------------------------------------------------------------- the same ids, two tenants


async def test_same_ids_two_calls_pushes_stay_in_their_tenant(stack: dict[str, Any]) -> None:
    acme: Tenant = stack["acme"]
    beta: Tenant = stack["beta"]
    port = stack["port"]
    push = f"ws://127.0.0.1:{port}/v1/push?token="
    async with (
        websockets.connect(push + token_of(stack, "acme")) as acme_alice,
        websockets.connect(push + token_of(stack, "beta")) as beta_alice,
    ):
        body = {"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101"}
        for t in (acme, beta):  # the same Idempotency-Key in both tenants: two calls
            r = await t.http.post("/v1/calls", json=body, headers={"Idempotency-Key": "press-0001"})
            assert r.status_code == 201, r.text
            assert r.json()["call_id"] == "press-0001"
        a = await wait_phase(acme.http, "press-0001", "wait")
        b = await wait_phase(beta.http, "press-0001", "wait")
        assert a["caller_name"] == "Acme Lobby" and b["caller_name"] == "Beta Lobby"
        assert all(e["call_id"] == "press-0001" and "~" not in e["id"] for e in a["events"] + b["events"])
        assert all("~" not in at["room_id"] for at in a["attempts"] + b["attempts"])
        got_a = [f for f in await frames(acme_alice) if f.get("type") == "incoming_call"]
        got_b = [f for f in await frames(beta_alice) if f.get("type") == "incoming_call"]
        assert len(got_a) == 1 and got_a[0]["payload"]["caller_name"] == "Acme Lobby", got_a
        assert len(got_b) == 1 and got_b[0]["payload"]["caller_name"] == "Beta Lobby", got_b
        assert got_a[0]["call_id"] == got_b[0]["call_id"] == "press-0001"
        # acme's alice answers acme's call; beta's call rings on (its alice is another line)
        r = await acme.http.post(
            "/v1/calls/press-0001/answer",
            headers={"Authorization": f"Bearer {token_of(stack, 'acme')}", "X-API-Key": ""},
        )
        assert r.status_code == 200 and r.json()["call_id"] == "press-0001", r.text
        await wait_phase(acme.http, "press-0001", "talk")
        assert (await beta.http.get("/v1/calls/press-0001")).json()["phase"] == "wait"
        # acme's call events never reached beta's alice (nor the other way round)
        assert not [f for f in await frames(beta_alice, 0.5) if "Acme" in json.dumps(f)]
        # a party sees only its tenant's calls
        mine = await acme.http.get(
            "/v1/me/calls", headers={"Authorization": f"Bearer {token_of(stack, 'beta')}", "X-API-Key": ""}
        )
        assert mine.status_code == 200 and [c["caller_name"] for c in mine.json()["items"]] == ["Beta Lobby"]
        for t in (acme, beta):
            r = await t.http.post("/v1/calls/press-0001/force-hang-up", json={})
            assert r.status_code == 200, r.text
        await wait_phase(beta.http, "press-0001", "ended")
        # the event feed: each tenant its own events, with the call id it knows
        for t in (acme, beta):
            items = (await t.http.get("/v1/events")).json()["items"]
            assert items and {e["tenant_id"] for e in items} == {t.id}, items
            assert {e["call_id"] for e in items} == {"press-0001"}
            assert all(
                e["data"]["call_id"] == "press-0001" and "~" not in json.dumps(e["data"]) for e in items
            )


# ---------------------------------------------------------------- every route


def _fill(path: str, call_id: str, key_id: str) -> str:
    values = {
        "sn": "A-DOOR",
        "user_id": "a-user",
        "unit_id": "a-unit",
        "group_id": "a-group",
        "call_id": call_id,
        "target_kind": "device",
        "target_id": "A-DOOR",
        "action_id": f"{call_id}.action-1",
        "key_id": key_id,
        "tenant_id": "acme",
        "site_id": "a-site",
    }
    out = path
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    # any other resource id (a webhook, a delivery, ...): an id that is nobody's
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + "a-resource" + out[end + 1 :]
    return out


def _body(method: str, path: str, call_id: str) -> dict[str, Any]:
    """A body that names acme's resources where the route takes one (else ``{}``: 422 is fine)."""
    if path == "/v1/calls":
        return {"caller": {"kind": "device", "id": "A-DOOR"}, "unit_id": "a-unit"}
    if path == "/v1/tokens":
        return {"party": {"kind": "user", "id": "a-user"}}
    if path == "/v1/authorizations":
        return {"user_id": "a-user", "target_kind": "device", "target_id": "A-DOOR"}
    if path.endswith("/devices") and "device-groups" in path:
        return {"sn": "A-DOOR"}
    if path == "/v1/keys":
        return {"scopes": ["calls:read"], "tenant_id": "acme"}
    if path.endswith("/force-hang-up"):
        return {}
    if method == "put" and path.startswith("/v1/sites/"):
        return {"id": "a-site", "name": "beta's own site"}
    if method == "put" and path.startswith("/v1/units/"):
        return {"id": "a-unit", "name": "beta's own", "residents": ["a-user"]}
    return {}


async def snapshot(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    out = {}
    for path in (
        "/v1/sites",
        "/v1/devices",
        "/v1/users",
        "/v1/units",
        "/v1/device-groups",
        "/v1/authorizations",
    ):
        r = await http.get(path)
        assert r.status_code == 200, r.text
        out[path] = r.json()
    view = (await http.get(f"/v1/calls/{call_id}")).json()
    out["call"] = {k: view[k] for k in ("call_id", "caller", "unit_id", "caller_name")}
    return out


async def test_every_route_is_tenant_scoped(stack: dict[str, Any]) -> None:
    acme: Tenant = stack["acme"]
    beta: Tenant = stack["beta"]
    app = stack["app"]
    call_id = f"a-call-{uuid.uuid4().hex[:8]}"
    r = await acme.http.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "A-DOOR"}, "unit_id": "a-unit"},
        headers={"Idempotency-Key": call_id},
    )
    assert r.status_code == 201, r.text
    await wait_phase(acme.http, call_id, "wait")
    acme_key_id = next(k["id"] for k in (await acme.http.get("/v1/keys")).json())
    before = await snapshot(acme.http, call_id)

    doc = app.openapi()
    swept: list[tuple[str, str]] = []
    credentials = {
        "beta key": {"X-API-Key": beta.key},
        "beta party": {"Authorization": f"Bearer {token_of(stack, 'beta', 'alice')}"},
    }
    for path, item in doc["paths"].items():
        if path in NOT_TENANT_SCOPED:
            continue
        for method in item:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            swept.append((method, path))
            url = _fill(path, call_id, acme_key_id)
            body = _body(method, path, call_id)
            for who, headers in credentials.items():
                if path.endswith("/events/stream"):  # a stream: only its first answer
                    async with beta.http.stream(
                        method, url, headers={**headers, "X-API-Key": headers.get("X-API-Key", "")}
                    ) as r:
                        assert r.status_code < 500 and (True)
                    continue
                r = await beta.http.request(
                    method,
                    url,
                    json=body if method in ("post", "put", "patch") else None,
                    headers={"X-API-Key": "", **headers},
                )
                where = f"{who}: {method.upper()} {url} -> {r.status_code} {r.text[:300]}"
                assert r.status_code < 500, where
                # acme's names ("ACME-SECRET door", "Acme Lobby", "Alice of Acme") never reach beta
                assert MARK not in r.text and "Acme" not in r.text, where
                named_acme = "{" in path and "tenant_id" not in path and "key_id" not in path
                if method in ("get", "delete", "patch") and named_acme and r.status_code < 400:
                    raise AssertionError(f"acme's resource answered to beta: {where}")
                if r.status_code == 404:
                    assert r.json()["type"] == "/problems/not-found", where
    assert len(swept) >= 40, swept  # the sweep ran over the whole API
    # acme's resources are untouched and its call goes on
    assert await snapshot(acme.http, call_id) == before
    r = await acme.http.post(f"/v1/calls/{call_id}/force-hang-up", json={})
    assert r.status_code == 200, r.text


async def test_unknown_and_other_tenants_ids_answer_alike(stack: dict[str, Any]) -> None:
    beta: Tenant = stack["beta"]
    for path in ("/v1/devices/A-DOOR", "/v1/devices/NOBODY"):
        r = await beta.http.get(path)
        assert r.status_code == 404
    a, b = (
        (await beta.http.get("/v1/devices/A-DOOR")).json(),
        (await beta.http.get("/v1/devices/NOBODY")).json(),
    )
    assert {k: v for k, v in a.items() if k not in ("detail", "instance")} == {
        k: v for k, v in b.items() if k not in ("detail", "instance")
    }


# ---------------------------------------------------------------- keys


async def test_key_rotation_while_calls_run(stack: dict[str, Any]) -> None:
    root: httpx.AsyncClient = stack["root"]
    acme: Tenant = stack["acme"]
    keys = []
    for name in ("old", "new"):
        r = await acme.http.post(
            "/v1/keys", json={"scopes": ["calls:read", "calls:write", "keys:admin"], "name": name}
        )
        assert r.status_code == 201, r.text
        keys.append(r.json())
    old = {"X-API-Key": keys[0]["key"]}
    new = {"X-API-Key": keys[1]["key"]}
    call_id = f"rot-{uuid.uuid4().hex[:8]}"
    r = await acme.http.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101"},
        headers={**old, "Idempotency-Key": call_id},
    )
    assert r.status_code == 201, r.text
    await wait_phase(acme.http, call_id, "wait", old)
    # revoke the old key with the new one: the old is 401 at once, the call goes on
    r = await acme.http.delete(f"/v1/keys/{keys[0]['id']}", headers=new)
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    r = await acme.http.get(f"/v1/calls/{call_id}", headers=old)
    assert r.status_code == 401 and r.json()["errCode"] == 1011, r.text
    alice = {"Authorization": f"Bearer {token_of(stack, 'acme')}", "X-API-Key": ""}
    assert (await acme.http.post(f"/v1/calls/{call_id}/answer", headers=alice)).status_code == 200
    await wait_phase(acme.http, call_id, "talk", new)
    assert (await acme.http.post(f"/v1/calls/{call_id}/hang-up", headers=alice)).status_code == 200
    await wait_phase(acme.http, call_id, "ended", new)
    # the list shows both, never a secret; last use was recorded
    listed = (await acme.http.get("/v1/keys", headers=new)).json()
    by_id = {k["id"]: k for k in listed}
    assert by_id[keys[0]["id"]]["revoked_at"] and by_id[keys[1]["id"]]["last_used_at"]
    assert all("key" not in k for k in listed)
    assert keys[0]["key"] not in json.dumps(listed)
    # another tenant's key: 404, as an unknown one; the platform admin sees every tenant's
    beta: Tenant = stack["beta"]
    assert (await beta.http.delete(f"/v1/keys/{keys[1]['id']}")).status_code == 404
    assert {k["tenant_id"] for k in (await root.get("/v1/keys", params={"tenant_id": "acme"})).json()} == {
        "acme"
    }


async def test_expired_key_missing_scope_unknown_party_disabled_tenant(
    stack: dict[str, Any], db_pool: asyncpg.Pool
) -> None:
    root: httpx.AsyncClient = stack["root"]
    acme: Tenant = stack["acme"]
    # expired: 401
    _key, secret = await tenant_store.create_key(
        db_pool, "acme", [Scope.CALLS_READ], "expired", datetime.now(UTC) - timedelta(seconds=1)
    )
    r = await acme.http.get("/v1/calls", headers={"X-API-Key": secret})
    assert r.status_code == 401 and "expired" in r.json()["detail"], r.text
    # missing scope: 403 forbidden (errCode 1016), nothing started
    r = await acme.http.post("/v1/keys", json={"scopes": ["calls:read"]})
    reader = {"X-API-Key": r.json()["key"]}
    assert (await acme.http.get("/v1/calls", headers=reader)).status_code == 200
    r = await acme.http.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101"},
        headers={**reader, "Idempotency-Key": "no-scope-1"},
    )
    assert (
        r.status_code == 403 and r.json()["errCode"] == 1016 and r.json()["missing_scopes"] == ["calls:write"]
    ), r.text
    assert (await acme.http.get("/v1/devices", headers=reader)).status_code == 403
    # a key never grants more than its creator has; tenants:admin is the platform's
    r = await acme.http.post("/v1/keys", json={"scopes": ["tenants:admin"]})
    assert r.status_code == 403, r.text
    assert (await acme.http.get("/v1/tenants")).status_code == 403
    # party token for an unknown user / another tenant's user: 404
    r = await acme.http.post("/v1/tokens", json={"party": {"kind": "user", "id": "nobody"}})
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found", r.text
    beta: Tenant = stack["beta"]
    r = await beta.http.post("/v1/tokens", json={"party": {"kind": "user", "id": "a-user"}})
    assert r.status_code == 404, r.text
    r = await acme.http.post("/v1/tokens", json={"party": {"kind": "user", "id": "alice"}})
    assert r.status_code == 201
    acme_token = r.json()["token"]
    # a disabled tenant: its keys and tokens are refused, the other tenant goes on
    r = await root.post("/v1/tenants/acme/disable")
    assert r.status_code == 200 and r.json()["disabled_at"], r.text
    assert (await acme.http.get("/v1/devices")).status_code == 401
    stack["app"].state.tenant_enabled = {}  # forget the API's 5 s cache of tenant states
    r = await acme.http.get(
        "/v1/me/calls", headers={"Authorization": f"Bearer {acme_token}", "X-API-Key": ""}
    )
    assert r.status_code == 401, r.text
    assert (await beta.http.get("/v1/devices")).status_code == 200
    r = await root.post("/v1/tenants/default/disable")
    assert r.status_code == 422 and "cannot be disabled" in r.json()["detail"], r.text
    r = await root.post("/v1/tenants/acme/enable")
    assert r.status_code == 200 and r.json()["disabled_at"] is None
    assert (await acme.http.get("/v1/devices")).status_code == 200


# ---------------------------------------------------------------- no stack


def test_dev_secrets_refused_in_production() -> None:
    with pytest.raises(
        pydantic.ValidationError, match="RINGFLOW_API_KEY and RINGFLOW_TOKEN_SECRET are the development"
    ):
        Settings(environment="production")
    with pytest.raises(pydantic.ValidationError, match="RINGFLOW_TOKEN_SECRET is the development"):
        Settings(environment="production", api_key="a-real-key-0123")
    Settings(environment="production", api_key="a-real-key-0123", token_secret="x" * 40)
    Settings()  # development: the embedded stack's defaults


def test_one_tenants_burst_does_not_take_anothers_tokens() -> None:
    now = [0.0]
    admission = Admission(
        Settings(
            admission_rate_per_s=20,
            admission_burst=20,
            admission_tenant_rate_per_s=10,
            admission_tenant_burst=10,
        ),
        clock=lambda: now[0],
    )
    refused = 0
    for _ in range(50):  # acme bursts: 10 admitted, the rest refused at acme's own bucket
        try:
            admission.admit("acme")
        except Exception:
            refused += 1
    assert refused == 40
    for _ in range(10):  # beta's share is intact (the process-wide bucket still has 10)
        admission.admit("beta")
    now[0] += 1.0
    admission.admit("acme")


async def test_building_file_refused_when_it_would_merge(db_pool: asyncpg.Pool) -> None:
    await tenant_store.create_tenant(db_pool, "acme", "Acme")
    await tenant_store.create_tenant(db_pool, "beta", "Beta")
    tower = {
        "site": {"id": "tower-a", "name": "Tower A", "time_zone": "Europe/Paris"},
        "devices": [{"sn": "T-DOOR", "name": "Tower door"}],
        "users": [{"id": "alice", "name": "Alice"}],
        "units": [{"id": "101", "name": "Tower 101", "residents": ["alice"]}],
    }
    assert (await load_building(db_pool, Building.model_validate(tower), "acme"))["units"] == 1
    # another building of acme with its own unit 101: a unit per site, nothing replaced
    court = {
        **tower,
        "site": {"id": "court", "name": "Court"},
        "devices": [{"sn": "C-DOOR", "name": "Court door"}],
    }
    assert (await load_building(db_pool, Building.model_validate(court), "acme"))["units"] == 1
    assert await db_pool.fetchval("SELECT count(*) FROM units WHERE tenant_id = 'acme' AND id = '101'") == 2
    # the tower's file into another tenant: refused, nothing written
    with pytest.raises(LoadRefused, match="site 'tower-a' belongs to another tenant"):
        await load_building(db_pool, Building.model_validate(tower), "beta")
    assert await db_pool.fetchval("SELECT count(*) FROM users WHERE tenant_id = 'beta'") == 0
    # a device of the tower in the court's file: refused, not moved
    moved = {**court, "devices": [{"sn": "T-DOOR", "name": "Tower door"}]}
    with pytest.raises(LoadRefused, match="device 'T-DOOR' already belongs to site 'tower-a'"):
        await load_building(db_pool, Building.model_validate(moved), "acme")
    assert (
        await db_pool.fetchval("SELECT site_id FROM devices WHERE tenant_id = 'acme' AND sn = 'T-DOOR'")
        == "tower-a"
    )
    with pytest.raises(LoadRefused, match="no tenant 'nobody'"):
        await load_building(db_pool, Building.model_validate(tower), "nobody")


def test_cli_tenants_and_keys(db_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """``ringflow tenants create|list|disable``, ``keys create|list|revoke`` (the key printed
    once, never listed), ``directory load --tenant`` and its one-line refusal."""
    from typer.testing import CliRunner

    from ringflow.cli import app as cli
    from ringflow.settings import get_settings

    monkeypatch.setenv("RINGFLOW_DATABASE_URL", db_dsn)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        r = runner.invoke(cli, ["tenants", "create", "acme", "--name", "Acme Property"])
        assert r.exit_code == 0 and "created tenant acme" in r.output, r.output
        r = runner.invoke(cli, ["tenants", "create", "Not A Tenant"])
        assert r.exit_code == 1 and "is not a tenant id" in r.output, r.output
        r = runner.invoke(
            cli, ["keys", "create", "--tenant", "acme", "--scope", "calls:write", "--expires-in", "30d"]
        )
        assert r.exit_code == 0, r.output
        secret = r.stdout.strip().splitlines()[0]
        assert secret.startswith("rfk_")
        key_id = secret.split("_")[1]
        r = runner.invoke(cli, ["keys", "list", "--tenant", "acme"])
        assert r.exit_code == 0 and key_id in r.output and secret not in r.output, r.output
        r = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--scope", "everything"])
        assert r.exit_code == 1 and "scopes:" in r.output, r.output
        r = runner.invoke(cli, ["keys", "revoke", key_id])
        assert r.exit_code == 0 and f"revoked key {key_id}" in r.output, r.output
        assert runner.invoke(cli, ["keys", "revoke", "nokey"]).exit_code == 1
        building = tmp_path / "tower.yaml"
        building.write_text("site: {id: tower-a, name: Tower A}\nusers: [{id: alice, name: Alice}]\n")
        r = runner.invoke(cli, ["directory", "load", str(building), "--tenant", "acme"])
        assert r.exit_code == 0 and "(tenant acme)" in r.output and "1 sites" in r.output, r.output
        runner.invoke(cli, ["tenants", "create", "beta"])
        r = runner.invoke(cli, ["directory", "load", str(building), "--tenant", "beta"])
        assert r.exit_code == 1 and "site 'tower-a' belongs to another tenant" in r.output, r.output
        r = runner.invoke(cli, ["tenants", "disable", "beta"])
        assert r.exit_code == 0 and "tenant beta disabled" in r.output
        r = runner.invoke(cli, ["tenants", "list"])
        assert r.exit_code == 0 and "acme" in r.output and "default" in r.output, r.output
    finally:
        get_settings.cache_clear()


async def test_readme_flow_needs_no_tenant_setup(stack: dict[str, Any], db_pool: asyncpg.Pool) -> None:
    """The README's curl examples: the bootstrap key on the default tenant, the example
    building loaded into the default site, a call, its view, a resident's token and answer."""
    from ringflow.directory_load import read_building

    root: httpx.AsyncClient = stack["root"]
    building = await asyncio.to_thread(read_building, EXAMPLE_BUILDING)
    counts = await load_building(db_pool, building)
    assert counts["sites"] == 1 and counts["units"] == 3  # the default site's name and time zone
    call_id = f"press-{uuid.uuid4().hex[:6]}"
    r = await root.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101", "room_type": "video"},
        headers={"Idempotency-Key": call_id},
    )
    assert r.status_code == 201 and r.json()["call_id"] == call_id, r.text
    view = await wait_phase(root, call_id, "wait")
    assert view["caller_name"] == "Maple Court Lobby" and view["temporal_ui_url"].endswith(
        f"/workflows/{call_id}"
    )
    r = await root.post("/v1/tokens", json={"party": {"kind": "user", "id": "alice"}})
    assert r.status_code == 201, r.text
    alice = {"Authorization": f"Bearer {r.json()['token']}", "X-API-Key": ""}
    r = await root.post(f"/v1/calls/{call_id}/answer", headers=alice)
    assert r.status_code == 200 and r.json()["call_id"] == call_id, r.text
    r = await root.post(f"/v1/calls/{call_id}/hang-up", headers=alice)
    assert r.status_code == 200, r.text
    # the default tenant's call is not acme's (nor is acme's alice the default tenant's)
    assert (await stack["acme"].http.get(f"/v1/calls/{call_id}")).status_code == 404


async def test_unit_numbers_per_site_follow_the_calling_device(stack: dict[str, Any]) -> None:
    """Unit 101 of two sites of one tenant: a device rings its own site's 101; an explicit
    ``site_id`` rings that site's."""
    acme: Tenant = stack["acme"]
    await put(acme.http, "/v1/sites/tower", {"id": "tower", "name": "Tower", "time_zone": "Europe/Paris"})
    await put(
        acme.http,
        "/v1/devices/T-DOOR",
        {"sn": "T-DOOR", "name": "Tower door", "site_id": "tower", "voip_token_expires_at": FUTURE},
    )
    await put(acme.http, "/v1/users/tina", {"id": "tina", "name": "Tina"})
    for sn in ("T-DOOR", "LOBBY-1"):
        r = await acme.http.post(
            "/v1/authorizations", json={"user_id": "tina", "target_kind": "device", "target_id": sn}
        )
        assert r.status_code == 201, r.text
    await put(
        acme.http,
        "/v1/units/101",
        {"id": "101", "site_id": "tower", "name": "Tower 101", "residents": ["tina"]},
    )
    assert (await acme.http.get("/v1/units/101", params={"site_id": "tower"})).json()["residents"] == ["tina"]
    assert (await acme.http.get("/v1/units/101")).json()["residents"] == ["alice", "bob"]
    cases = [
        ({"caller": {"kind": "device", "id": "T-DOOR"}, "unit_id": "101"}, ["tina"]),
        ({"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101"}, ["alice", "bob"]),
        ({"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101", "site_id": "tower"}, ["tina"]),
    ]
    for body, rung in cases:
        call_id = f"site-{uuid.uuid4().hex[:8]}"
        r = await acme.http.post("/v1/calls", json=body, headers={"Idempotency-Key": call_id})
        assert r.status_code == 201, r.text
        view = await wait_phase(acme.http, call_id, "wait")
        for _ in range(100):  # simultaneous: every room's attempt row
            if len(view["attempts"]) >= len(rung):
                break
            await asyncio.sleep(0.05)
            view = (await acme.http.get(f"/v1/calls/{call_id}")).json()
        assert sorted(a["listener"]["id"] for a in view["attempts"]) == rung, (body, view["attempts"])
        assert (await acme.http.post(f"/v1/calls/{call_id}/force-hang-up", json={})).status_code == 200
    r = await acme.http.post(
        "/v1/calls",
        json={"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": "101", "site_id": "nowhere"},
        headers={"Idempotency-Key": "site-nowhere"},
    )
    assert r.status_code == 404 and r.json()["kind"] == "unit", r.text

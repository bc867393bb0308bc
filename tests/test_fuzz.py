"""Bad input (issue 4) against ONE embedded stack: schemathesis over the API's own OpenAPI
(a bounded number of generated requests per operation, valid credentials) must find no
5xx and no response that breaks its documented schema; the push channel closes on
malformed, oversized, unknown and binary frames with a clear code and reason; garbage
SDP is a 4xx problem. None of it changes a live call."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import hypothesis
import pytest
import pytest_asyncio
import schemathesis
import websockets
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from tests.integration_helpers import LOBBY, PROBLEM_JSON, World, poll, running_world

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 15
PARTY_ACTION = re.compile(r"^/v1/calls/\{call_id\}/(answer|reject|hang-up|cancel|media)$")


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(tmp_path_factory.mktemp("fuzz"), media_enabled=True) as w:
        yield w


def _fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], extra_checks: tuple[Any, ...] = ()
) -> int:
    """``EXAMPLES_PER_OPERATION`` generated requests to ``operation``, valid and invalid
    (schemathesis' positive and negative modes); returns how many were sent. Raises the
    first check failure (a 5xx, or a body not matching the schema)."""
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE))
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(
            base_url=base_url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance, *extra_checks],
        )

    run()
    return sent


def _fuzz(
    base_url: str, headers_for: dict[str, dict[str, str]], extra_checks: tuple[Any, ...] = ()
) -> tuple[dict[str, int], list[str]]:
    """Every operation of ``/openapi.json`` with its credentials (``headers_for``: "backend" /
    "party") and ``extra_checks`` besides no 5xx and the documented schema: requests sent per
    operation, and the failures found."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sent: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read: the OpenAPI is broken
            failures.append(f"invalid schema: {result.err()}")
            continue
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        headers = headers_for["party" if PARTY_ACTION.match(operation.path) else "backend"]
        try:
            sent[label] = _fuzz_operation(operation, base_url, headers, extra_checks)
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{label}: {e}"[:3000])
    return sent, failures


async def test_openapi_fuzz_no_5xx_and_responses_match_schema(world: World) -> None:
    [resident] = await world.residents(1, "fz")
    headers_for = {
        "backend": {"X-API-Key": world.api_key},
        "party": {"Authorization": f"Bearer {await world.backend.token(resident)}"},
    }
    sent, failures = await asyncio.to_thread(_fuzz, world.api_url, headers_for)
    assert failures == [], "\n\n".join(failures)
    assert "POST /v1/calls" in sent and "GET /v1/calls/{call_id}" in sent
    assert all(n > 0 for n in sent.values()), sent


DEFAULT_TENANTS_NAMES = ("Maple Court", "Moreau", "Okafor")
"""In the default tenant's building (examples/building.yaml): never in an answer to another tenant."""


@schemathesis.check
def no_default_tenant_data(ctx: Any, response: Any, case: Any) -> bool | None:
    """Issue 9: an answer to another tenant's key or token never carries the default tenant's data."""
    text = response.text or ""
    leaked = [n for n in DEFAULT_TENANTS_NAMES if n in text]
    if leaked:
        raise AssertionError(f"{case.operation.label}: the default tenant's {leaked} in {text[:300]}")
    return None


async def test_openapi_fuzz_as_another_tenant_no_5xx_no_cross_tenant_read(world: World) -> None:
    """Issue 9: schemathesis with a second tenant's key and party token (same scopes as a
    backend's): no 5xx, answers as documented, and nothing of the default tenant's building."""
    root = world.backend.http
    r = await root.post("/v1/tenants", json={"id": "fuzz-other", "name": "Other"})
    assert r.status_code == 201, r.text
    scopes = [
        "directory:read",
        "directory:write",
        "calls:read",
        "calls:write",
        "webhooks:admin",
        "keys:admin",
    ]
    r = await root.post("/v1/keys", json={"tenant_id": "fuzz-other", "scopes": scopes})
    assert r.status_code == 201, r.text
    key = {"X-API-Key": r.json()["key"]}
    r = await root.post("/v1/users", json={"id": "other-user", "name": "Other"}, headers=key)
    assert r.status_code == 201, r.text
    r = await root.post("/v1/tokens", json={"party": {"kind": "user", "id": "other-user"}}, headers=key)
    assert r.status_code == 201, r.text
    headers_for = {"backend": key, "party": {"Authorization": f"Bearer {r.json()['token']}"}}
    sent, failures = await asyncio.to_thread(_fuzz, world.api_url, headers_for, (no_default_tenant_data,))
    assert failures == [], "\n\n".join(failures)
    assert all(n > 0 for n in sent.values()), sent


async def _snapshot(world: World, call_id: str) -> tuple[str, list[str], list[tuple[str, bool]]]:
    """The call's phase, its event ids and its outbox rows (id, acked): what must not change."""
    view = await world.backend.call(call_id)
    rows = await world.pool.fetch(
        "SELECT id, acked_at IS NOT NULL AS acked FROM outbox WHERE call_id = $1", call_id
    )
    return view["phase"], sorted(e["id"] for e in view["events"]), sorted((r["id"], r["acked"]) for r in rows)


async def _ringing_call(world: World) -> tuple[str, str]:
    """A call from the lobby ringing a fresh resident (ring timeout 60 s): (call id, the
    resident's token), once the ring push is in the outbox."""
    [resident] = await world.residents(1, "ws")
    call_id = await world.place(LOBBY, [resident], ring_timeout_s=60)
    await poll(lambda: world.outbox_ids(resident, call_id), bool, 10, "the resident is rung")
    return call_id, await world.backend.token(resident)


async def test_push_channel_closes_on_bad_frames_and_changes_nothing(world: World) -> None:
    call_id, token = await _ringing_call(world)
    ws_url = world.api_url.replace("http", "ws", 1) + "/v1/push?token="
    big = 16 * 1024 + 1
    cases: list[tuple[str | bytes, int, str]] = [
        ("{not json", 1003, "malformed JSON"),
        (b"\x00\xff\xfe garbage \x81", 1003, "malformed JSON"),
        (bytes(range(256)) * 8, 1003, "malformed JSON"),
        ("[1, 2, 3]", 1003, "invalid frame"),
        ("null", 1003, "invalid frame"),
        (json.dumps({"action": "dance", "call_id": call_id}), 1003, "invalid frame: action"),
        (json.dumps({"action": "answer"}), 1003, "call_id"),
        (json.dumps({"ack": "everything"}), 1003, "invalid frame: ack"),
        (json.dumps({"ack": ["x"], "action": "answer", "call_id": call_id}), 1003, "exactly one"),
        (json.dumps({"action": "answer", "call_id": call_id, "extra": 1}), 1003, "invalid frame: extra"),
        ("x" * big, 1009, "larger than"),
        (json.dumps({"action": "answer", "call_id": call_id, "pad": "x" * big}), 1009, "larger than"),
        (b"\x00" * (1024 * 1024), 1009, "larger than"),
    ]
    before = await _snapshot(world, call_id)
    for frame, code, reason in cases:
        async with websockets.connect(ws_url + token, max_size=2**20) as ws:
            await ws.send(frame)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:  # pending pushes first (not acked), then the close
                    await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None, frame[:40]
        assert closed.value.rcvd.code == code, (frame[:40], closed.value.rcvd)
        assert reason in closed.value.rcvd.reason, (frame[:40], closed.value.rcvd.reason)
    for bad_token in ("", "garbage", token[:-2] + "xx"):
        async with websockets.connect(ws_url + bad_token) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert closed.value.rcvd.reason
    assert await _snapshot(world, call_id) == before
    # the call is intact: it still rings and can be answered
    answered = await world.backend.http.post(
        f"/v1/calls/{call_id}/answer", headers={"Authorization": f"Bearer {token}"}
    )
    assert answered.status_code == 200, answered.text
    await world.backend.http.post(f"/v1/calls/{call_id}/force-hang-up", json={"reason": "test over"})
    await world.wait_ended(call_id, 20)


async def test_garbage_sdp_is_a_problem_and_changes_nothing(world: World) -> None:
    call_id, token = await _ringing_call(world)
    view = await world.backend.call(call_id)
    room_id = view["attempts"][0]["room_id"]
    party = {"Authorization": f"Bearer {token}"}
    offers = [
        "garbage",
        "v=0\r\n",
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        "\x00\x01\x02" * 100,
        "m=video " + "9" * 5000,
        "v=0\r\n" + "a=candidate:" + "x" * 30000,
    ]
    before = await _snapshot(world, call_id)
    for sdp in offers:
        r = await world.backend.http.post(
            f"/v1/calls/{call_id}/media",
            json={"room_id": room_id, "sdp": sdp, "type": "offer"},
            headers=party,
        )
        assert 400 <= r.status_code < 500, (sdp[:30], r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["type"].startswith("/problems/")
    r = await world.backend.http.post(
        f"/v1/calls/{call_id}/media", json={"room_id": room_id, "sdp": "x" * 200_000}, headers=party
    )
    assert r.status_code in (413, 422) and r.headers["content-type"] == PROBLEM_JSON
    assert await _snapshot(world, call_id) == before
    await world.backend.http.post(f"/v1/calls/{call_id}/force-hang-up", json={"reason": "test over"})
    await world.wait_ended(call_id, 20)


async def test_nul_characters_are_a_validation_problem_and_write_nothing(world: World) -> None:
    # found by the OpenAPI fuzz: PostgreSQL text/jsonb cannot hold U+0000 (was a 500)
    http = world.backend.http
    before = await world.pool.fetchval("SELECT count(*) FROM users")
    for path, body in (
        ("/v1/users", {"id": "nul-user", "name": "A\u0000B"}),
        ("/v1/device-groups", {"id": "nul-group", "name": "\u0000"}),
        ("/v1/units", {"id": "nul-unit", "name": "Unit\u0000"}),
        ("/v1/devices", {"sn": "NUL-1", "name": "Door\u0000"}),
    ):
        r = await http.post(path, json=body)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON
        assert (r.json()["type"], r.json()["errCode"]) == ("/problems/validation", 1010)
    assert await world.pool.fetchval("SELECT count(*) FROM users") == before
    for table, column, ident in (
        ("device_groups", "id", "nul-group"),
        ("units", "id", "nul-unit"),
        ("devices", "sn", "NUL-1"),
    ):
        assert await world.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", ident) == 0

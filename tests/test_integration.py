"""Integration (issue 2): the whole product on ONE embedded stack (PostgreSQL, Temporal dev
server, the real worker and API processes), ``examples/building.yaml`` loaded, driven only
through the public REST API and push channel, as a door station and resident apps do.

- the demo scenario (lobby -> unit 101: A times out, B busy, C answers) ends as expected
  and every room's events follow docs/events.md; it runs on its own stack with the media
  bridge: the door and the residents are agents with real media, C sees the door before
  answering, audio flows both ways, C opens the door from the call;
- a double press (same Idempotency-Key and body) starts ONE workflow; another body is 409;
- two concurrent calls to the same listener: one rings, the other gets ``busy``;
- bad input is a 4xx problem+json with a stable type and errCode, and writes nothing.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from media.network import MediaNetwork
from ringflow.demo import run_scenario
from tests.integration_helpers import (
    GARAGE,
    LOBBY,
    PROBLEM_JSON,
    World,
    event_order_problems,
    outcomes,
    party_json,
    room_names,
    running_world,
)

pytestmark = pytest.mark.integration

RING_S = 2.0


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(tmp_path_factory.mktemp("integration")) as w:
        yield w


@pytest_asyncio.fixture(scope="module")
async def media_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """A stack like ``ringflow demo``'s: the media bridge on, media on 127.0.0.1 only."""
    MediaNetwork().install()  # the agents' ICE host candidates: 127.0.0.1
    async with running_world(tmp_path_factory.mktemp("integration-media"), media_enabled=True) as w:
        yield w


async def test_demo_scenario_timeline_and_event_order(media_world: World) -> None:
    world = media_world
    out = io.StringIO()
    result = await run_scenario(world.api_url, world.api_key, RING_S, out)
    assert result.ok, result.problems
    view = result.call
    assert outcomes(view)[:3] == [("alice", "no_answer"), ("bob", "busy"), ("carol", "answered")]
    assert view["answered_by"] == {"kind": "user", "id": "carol"}
    assert view["end_reason"] == "hangUpVoip"
    assert view["keep_time_s"] >= 2  # talked ~3 s (ringflow.demo.TALK_S); keepTime counts talk only
    assert event_order_problems(view) == []
    rooms = list(room_names(view).values())
    # alice: rung, timed out; bob: busy at once (no ring); carol: rung, answered, talked.
    assert rooms[0][0] == "ringing" and rooms[0][-3:] == ["timeout", "endVoip", "finishVoip"]
    assert rooms[1] == ["busy", "endVoip", "finishVoip"]
    assert rooms[2][0] == "ringing"
    assert rooms[2].index("answered") < rooms[2].index("calling") < rooms[2].index("hangUpVoip")
    finish = next(
        e
        for e in view["events"]
        if e["room_id"] == view["attempts"][2]["room_id"] and e["name"] == "finishVoip"
    )
    assert finish["keepTime"] == view["keep_time_s"]
    # every room released its line
    assert (
        await world.pool.fetchval("SELECT count(*) FROM line_claims WHERE call_id = $1", view["call_id"]) == 0
    )
    assert "result      : OK" in out.getvalue()
    # real media: C saw the door's test pattern while it rang, then audio flowed both ways
    carol = result.resident_session
    assert carol is not None and carol.preview_pattern_frames > 0
    assert result.resident_stats is not None and result.resident_stats.kind("audio").loud_frames >= 25
    assert result.door_stats is not None and result.door_stats.kind("audio").loud_frames >= 25
    assert result.door_stats.kind("video").bytes_sent > 0
    # the bridge's own count of the bytes relayed each way (callEnded data), and the summary
    traffic = {f"{t['party']['kind']}:{t['party']['id']}": t for t in result.traffic}
    for who in ("device:LOBBY-1", "user:carol"):
        assert traffic[who]["bytes_received"] > 0 and traffic[who]["bytes_sent"] > 0, traffic
    assert traffic["device:LOBBY-1"]["video_bytes_received"] > 0
    printed = out.getvalue()
    assert "door LOBBY-1 -> carol: " in printed and "carol -> door LOBBY-1: " in printed, printed
    # C opened the door from the call: the door agent did it, acknowledged, the history says so
    [(opened_at, by)] = result.door_openings
    assert by == "Carol Moreau"
    assert f"door        : opened by Carol Moreau at {opened_at.astimezone():%H:%M:%S}" in out.getvalue()
    names = [e["name"] for e in view["events"]]
    assert names.index("calling") < names.index("customAction") < names.index("customActionResult")
    assert names.index("customActionResult") < names.index("hangUpVoip")
    done = next(e for e in view["events"] if e["name"] == "customActionResult")
    assert done["data"]["result"] == "done" and done["party"] == {"kind": "device", "id": "LOBBY-1"}


async def test_double_press_starts_one_workflow_and_other_body_conflicts(world: World) -> None:
    [resident] = await world.residents(1, "idem")
    key = f"press-{uuid.uuid4().hex[:8]}"
    body = {
        "caller": party_json(LOBBY),
        "callees": [party_json(resident)],
        "room_type": "voice",
        "policy": {"ring_timeout_s": RING_S},
    }
    # the same press twice at the same moment, then once more later
    first, second = await asyncio.gather(
        world.backend.place_call(body, key), world.backend.place_call(body, key)
    )
    third = await world.backend.place_call(body, key)
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert third.status_code == 200
    assert {r.json()["call_id"] for r in (first, second, third)} == {key}
    assert await world.workflow_count(key) == 1

    other = dict(body, room_type="video")
    conflict = await world.backend.place_call(other, key)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == PROBLEM_JSON
    doc = conflict.json()
    assert doc["type"] == "/problems/idempotency-conflict"
    assert doc["errCode"] == 1009
    assert await world.workflow_count(key) == 1

    view = await world.wait_ended(key, RING_S + 15)
    assert outcomes(view) == [(resident.id, "no_answer")]
    assert sum(e["name"] == "callStarted" for e in view["events"]) == 1
    assert event_order_problems(view) == []
    # a press after the call ended still answers with the same call, starts nothing
    again = await world.backend.place_call(body, key)
    assert again.status_code == 200 and again.json()["phase"] == "ended"
    assert await world.workflow_count(key) == 1


async def test_two_concurrent_calls_to_one_listener_one_is_busy(world: World) -> None:
    [resident] = await world.residents(1, "busy")
    client = await world.connect(resident)
    calls = await asyncio.gather(
        world.place(LOBBY, [resident], ring_timeout_s=RING_S),
        world.place(GARAGE, [resident], ring_timeout_s=RING_S),
    )
    views = await asyncio.gather(*(world.wait_ended(c, RING_S + 15) for c in calls))
    firsts = sorted(room_names(v)[v["attempts"][0]["room_id"]][0] for v in views)
    assert firsts == ["busy", "ringing"]
    results = sorted((v["end_reason"], v["err_code"]) for v in views)
    assert results == [("busy", 1002), ("timeout", None)]
    for v in views:
        assert event_order_problems(v) == []
    # only the call that rang pushed incoming_call to the resident, once
    rang = next(v["call_id"] for v in views if v["end_reason"] == "timeout")
    busy = next(v["call_id"] for v in views if v["end_reason"] == "busy")
    await client.wait_for(lambda m: m.call_id == rang and m.type == "missed_call", timeout=5)
    # issue 10: the missed call's missed_call push comes with callEnded, after the room's end
    assert [m.type for m in client.received if m.call_id == rang] == [
        "incoming_call",
        "call_cancelled",
        "missed_call",
    ]
    assert [m for m in client.received if m.call_id == busy] == []
    assert await world.outbox_ids(resident, busy) == set()


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"caller": party_json(LOBBY), "unit_id": "101", "room_type": "voice"}
    body.update(overrides)
    return body


async def test_bad_input_is_a_problem_and_writes_nothing(world: World) -> None:
    http = world.backend.http
    # a device whose VoIP token expired (reference 1(2): errCode 13)
    sn = f"OLD-{uuid.uuid4().hex[:6]}"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await http.post(
        "/v1/devices",
        json={"sn": sn, "name": "Old gate", "group_id": "main-entrance", "voip_token_expires_at": future},
    )
    assert r.status_code == 201, r.text
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await http.patch(f"/v1/devices/{sn}", json={"voip_token_expires_at": past})
    assert r.status_code == 200, r.text

    cases: list[tuple[str, dict[str, Any], int, str, int]] = [
        # name, request kwargs, status, problem type slug, errCode
        ("unknown unit", {"json": _body(unit_id="999")}, 404, "not-found", 1008),
        (
            "unknown device",
            {"json": _body(caller={"kind": "device", "id": "NO-SUCH-DOOR"})},
            404,
            "not-found",
            1008,
        ),
        (
            "unknown callee",
            {"json": _body(unit_id=None, callees=[{"kind": "user", "id": "nobody-here"}])},
            404,
            "not-found",
            1008,
        ),
        (
            "expired VoIP token",
            {"json": _body(caller={"kind": "device", "id": sn})},
            403,
            "voip-token-invalid",
            13,
        ),
        (
            "malformed JSON",
            {"content": b'{"caller": {', "headers": {"content-type": "application/json"}},
            422,
            "validation",
            1010,
        ),
        ("missing caller", {"json": {"unit_id": "101"}}, 422, "validation", 1010),
        (
            "unit and callees",
            {"json": _body(callees=[{"kind": "user", "id": "alice"}])},
            422,
            "validation",
            1010,
        ),
        ("bad room type", {"json": _body(room_type="hologram")}, 422, "validation", 1010),
        ("unknown field", {"json": _body(sneaky=True)}, 422, "validation", 1010),
        ("bad id", {"json": _body(unit_id="../etc")}, 422, "validation", 1010),
        (
            "wrong API key",
            {"json": _body(), "headers": {"X-API-Key": "not-the-key-at-all"}},
            401,
            "unauthenticated",
            1011,
        ),
        (
            "bad bearer token",
            {"json": _body(), "headers": {"Authorization": "Bearer forged.token.here"}},
            401,
            "unauthenticated",
            1011,
        ),
        (
            "oversized body",
            {"json": _body(pad="x" * (world.stack.settings.max_body_bytes + 1))},
            413,
            "payload-too-large",
            1013,
        ),
    ]
    before = await world.totals()
    keys = []
    for name, kwargs, status, slug, code in cases:
        key = f"bad-{uuid.uuid4().hex[:10]}"
        keys.append(key)
        headers = {"Idempotency-Key": key, **kwargs.pop("headers", {})}
        if "Authorization" in headers:
            async with httpx.AsyncClient(base_url=world.api_url) as anon:  # no API key
                r = await anon.post("/v1/calls", headers=headers, **kwargs)
        else:
            r = await http.post("/v1/calls", headers=headers, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON, name
        doc = r.json()
        assert doc["type"] == f"/problems/{slug}", (name, doc)
        assert doc["errCode"] == code, (name, doc)
        assert doc["status"] == status and doc["title"], name
    # a missing/malformed Idempotency-Key is a validation problem too
    r = await http.post("/v1/calls", json=_body())
    assert (r.status_code, r.json()["errCode"]) == (422, 1010)
    r = await http.post("/v1/calls", json=_body(), headers={"Idempotency-Key": "bad key with spaces"})
    assert (r.status_code, r.json()["errCode"]) == (422, 1010)

    assert await world.totals() == before
    counts = await asyncio.gather(*(world.workflow_count(k) for k in keys))
    assert list(counts) == [0] * len(keys)

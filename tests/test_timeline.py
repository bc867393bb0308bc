"""The call's timeline picture (issue 12 item 7): ``GET /v1/calls/{id}/timeline.svg`` of a real
escalated call on the embedded stack (A lets it ring: timeout, B is busy in another call, C
answers, talks, hangs up), and the text timeline the CLI and the demo print.

The SVG is parsed as XML; its lanes (one per room, class ``lane``), their labels, phase bars
(``data-phase``) and event marks (``data-event``) are checked, and so is the escaping of a
resident's name full of markup characters. Who may fetch it: the backend, a party of the call
(403 for another party, 404 for an unknown call), as ``GET /v1/calls/{id}``.
"""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from api.timeline_svg import room_phases
from ringflow.client import PartyClient, Received
from ringflow.contracts.calls import Attempt, CallView, Phase
from ringflow.contracts.common import Party
from ringflow.contracts.events import CallEvent
from ringflow.timeline import timeline_lines
from tests.integration_helpers import GARAGE, GROUP, LOBBY, PROBLEM_JSON, World, running_world, user

pytestmark = pytest.mark.integration

SVG = "{http://www.w3.org/2000/svg}"
TRICKY_NAME = "Carol <b>&amp; \"Co\" 'x'"
"""C's display name: every character XML must escape."""


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(tmp_path_factory.mktemp("timeline")) as w:
        yield w


async def _answerer(call_id: str, talk_s: float | None) -> Any:
    """A push handler that answers ``call_id`` when it rings, and hangs up after ``talk_s``
    seconds of talk (None: stays in the call)."""

    async def on_message(client: PartyClient, rec: Received) -> None:
        if rec.type == "incoming_call" and rec.call_id == call_id:
            r = await client.action(call_id, "answer")
            assert r.status_code == 200, r.text
            if talk_s is not None:
                await asyncio.sleep(talk_s)
                r = await client.action(call_id, "hang-up")
                assert r.status_code == 200, r.text

    return on_message


async def escalated_call(world: World) -> tuple[str, list[Party]]:
    """Call A, B, C (sequential, 1.5 s each) from the lobby door: A times out, B is busy
    talking to the garage door, C answers and hangs up after 1 s. Returns the call id, once
    ended, and [A, B, C]."""
    a, b = await world.residents(2, "tl")
    c = user(f"tl-carol-{uuid.uuid4().hex[:6]}")
    r = await world.backend.http.post("/v1/users", json={"id": c.id, "name": TRICKY_NAME})
    assert r.status_code == 201, r.text
    r = await world.backend.http.post(
        "/v1/authorizations", json={"user_id": c.id, "target_kind": "group", "target_id": GROUP}
    )
    assert r.status_code in (200, 201), r.text

    garage_call = f"tl-garage-{uuid.uuid4().hex[:8]}"
    await world.connect(b, on_message=await _answerer(garage_call, None))
    await world.place(GARAGE, [b], ring_timeout_s=10, key=garage_call)
    await world.wait_phase(garage_call, "talk", 20)

    call_id = f"tl-lobby-{uuid.uuid4().hex[:8]}"
    await world.connect(a)  # online, lets it ring
    await world.connect(c, on_message=await _answerer(call_id, 1.0))
    await world.place(LOBBY, [a, b, c], ring_timeout_s=1.5, key=call_id)
    await world.wait_ended(call_id, 30)
    r = await world.backend.http.post(f"/v1/calls/{garage_call}/force-hang-up", json={})
    assert r.status_code == 200, r.text
    return call_id, [a, b, c]


async def test_svg_of_an_escalated_call_has_a_lane_per_room(world: World, tmp_path: Path) -> None:
    call_id, (a, b, c) = await escalated_call(world)
    r = await world.backend.http.get(f"/v1/calls/{call_id}/timeline.svg")
    assert r.status_code == 200, r.text
    (tmp_path / "timeline.svg").write_bytes(r.content)  # for a person to look at
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.content)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox", "").startswith("0 0 960 ")
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    header = {t.get("class"): t for t in root.iter(f"{SVG}text") if t.get("class") in ("title", "facts")}
    title = header["title"].findtext(f"{SVG}title") or header["title"].text or ""
    assert title == f"device:LOBBY-1 (Maple Court Lobby) -> user:{a.id}, user:{b.id}, user:{c.id}"
    facts = header["facts"].text or ""
    assert facts.startswith(f"call {call_id} · voice · sequential · started ")
    assert "end hangUpVoip" in facts and f"answered by user:{c.id}" in facts
    assert "seconds since the call started" in texts and "0 s" in texts

    lanes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "lane"]
    assert len(lanes) == 3

    def lane(g: ET.Element) -> dict[str, Any]:
        return {
            "label": next(t.text for t in g.iter(f"{SVG}text") if t.get("class") == "lane-label"),
            "sub": next(t.text for t in g.iter(f"{SVG}text") if t.get("class") == "lane-sub"),
            "phases": [r.get("data-phase") for r in g.iter(f"{SVG}rect") if r.get("data-phase")],
            "events": [m.get("data-event") for m in g.iter(f"{SVG}g") if m.get("class") == "event"],
            "tooltips": [t.text or "" for m in g.iter(f"{SVG}g") for t in m.iter(f"{SVG}title")],
        }

    first, second, third = (lane(g) for g in lanes)
    assert first["label"] == f"1. Resident {a.id}" and first["sub"] == f"user:{a.id} · no_answer"
    assert first["phases"] == ["initiate", "wait", "finish"]
    assert first["events"][0] == "ringing" and first["events"][-3:] == ["timeout", "endVoip", "finishVoip"]
    assert second["label"] == f"2. Resident {b.id}" and second["sub"] == f"user:{b.id} · busy"
    assert second["events"] == ["busy", "endVoip", "finishVoip"]
    assert second["phases"] == ["initiate", "finish"]
    assert (
        third["label"] == f"3. {TRICKY_NAME}" and third["sub"] == f"user:{c.id} · answered"
    )  # escaped, intact
    assert third["phases"] == ["initiate", "wait", "join", "talk", "finish"]
    for name in ("ringing", "answered", "calling", "hangUpVoip", "endVoip", "finishVoip"):
        assert name in third["events"], third["events"]
    assert any(t.startswith("hangUpVoip at ") and f"user:{c.id}" in t for t in third["tooltips"])
    # the building call's own events on the call row
    call_row = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "call-row")
    marks = [m.get("data-event") for m in call_row.iter(f"{SVG}g") if m.get("class") == "event"]
    assert marks[0] == "callStarted" and marks.count("escalated") == 2 and marks[-1] == "callEnded"
    # the escaping is the serializer's: the raw document has the entities, never the markup
    assert b"<b>" not in r.content and b"&lt;b&gt;&amp;amp;" in r.content
    legend = [
        t.text for g in root.iter(f"{SVG}g") if g.get("class") == "legend" for t in g.iter(f"{SVG}text")
    ]
    assert legend == ["initiate", "wait (ringing)", "join", "talk", "finish"]

    # the text timeline of the same call
    view = CallView.model_validate(await world.backend.call(call_id))
    lines = timeline_lines(view)
    assert lines[0] == f"{title}: call {call_id}"
    assert len(lines) == 2 + len(view.events)
    assert any(" timeout " in line and f"user:{a.id}" in line for line in lines)

    # who may see it: a party of the call; another party 403, an unknown call 404
    async with httpx.AsyncClient(base_url=world.api_url) as http:
        for party, status in ((c, 200), (LOBBY, 200), (user("nobody-" + uuid.uuid4().hex[:6]), 403)):
            if status == 403:
                r = await world.backend.http.post("/v1/users", json={"id": party.id, "name": "Nobody"})
                assert r.status_code == 201
            token = await world.backend.token(party)
            r = await http.get(
                f"/v1/calls/{call_id}/timeline.svg", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == status, (party, r.text)
        r = await http.get(f"/v1/calls/{call_id}/timeline.svg")
        assert r.status_code == 401
    r = await world.backend.http.get("/v1/calls/no-such-call/timeline.svg")
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.json()["detail"] == "no call 'no-such-call'"


def test_phases_of_a_live_room_end_now() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = Attempt(room_id="c.1", seq=1, listener=user("x"), phase=Phase.WAIT, started_at=t0)
    ringing = CallEvent(id="c.1#1", call_id="c", room_id="c.1", name="ringing", at=t0 + timedelta(seconds=1))
    phases = room_phases(attempt, [ringing], t0, now=t0 + timedelta(seconds=5))
    assert [(p.phase, p.start_s, p.end_s) for p in phases] == [(Phase.INITIATE, 0, 1), (Phase.WAIT, 1, 5)]

"""Issue 10 on ONE embedded stack with the media bridge (PostgreSQL, Temporal, the worker, the
API and the bridge as processes; media on 127.0.0.1 only), with the device agent
(``ringflow/agent.py``) as the door:

- a missed video call from GARAGE-1 (``auto_answer``, ``open_door`` in examples/building.yaml):
  the visitor snapshot is in PostgreSQL (``call_snapshots``) and served from there to the rung
  resident and the backend, not to another resident; the resident got ``missed_call`` with the
  link, the feed has ``call.missed`` with the backend's link; inside the follow-up window the
  resident opens the door remotely (the door agent performs and acks it: audited as THAT
  call's customAction/customActionResult) and calls the door back (a new call that the door
  agent answers by itself, with media);
- a directory edit reaches a ringing call: a resident removed from the unit while the first
  one rings is not rung, and the call records ``planChanged``.
"""

from __future__ import annotations

import uuid
from typing import Any

from ringflow.agent import CallSession, LoggingDoor, MediaSpec, ResidentScript
from tests import test_agent
from tests.fakes import until
from tests.integration_helpers import World, party_json, poll
from tests.test_agent import GARAGE_SN, SMALL, device_agent, resident_agent

JPEG_MAGIC = b"\xff\xd8\xff"

# test_agent's fixtures: a stack of this module's own (media bridge on, examples/building.yaml)
# and the agents a test starts, closed at its end
world = test_agent.world
agents = test_agent.agents


async def test_missed_call_snapshot_remote_open_and_call_back(world: World, agents: list[Any]) -> None:
    door = await device_agent(world, agents, GARAGE_SN, MediaSpec(tone_hz=330, **SMALL))
    resident = await resident_agent(world, agents, ResidentScript(on_ring="ignore", preview=True), "miss")
    [stranger] = await world.residents(1, "stranger")
    policy = {"ring_timeout_s": 4, "follow_up_window_s": 300, "remote_open_after_miss": True}
    session = await door.place_call(callees=[resident.party], room_type="video", policy=policy)
    call_id = session.call_id
    view = await world.wait_ended(call_id, 30)
    assert view["end_reason"] == "timeout" and view["follow_up_until"] is not None
    assert view["has_snapshot"] is True

    # the snapshot is stored WITH the call, a JPEG, and served from there
    stored = await world.pool.fetchval(
        "SELECT jpeg FROM call_snapshots WHERE tenant_id = 'default' AND call_id = $1", call_id
    )
    assert stored is not None and bytes(stored).startswith(JPEG_MAGIC)
    mine = await resident.client.http.get(f"/v1/me/calls/{call_id}/snapshot.jpg")
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/jpeg"
    assert mine.content == bytes(stored)
    backend = await world.backend.http.get(f"/v1/calls/{call_id}/snapshot.jpg")
    assert backend.status_code == 200 and backend.content == bytes(stored)
    other = await world.backend.token(stranger)
    r = await resident.client.http.get(
        f"/v1/me/calls/{call_id}/snapshot.jpg", headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 403 and r.json()["type"].endswith("/not-a-party")

    # the missed_call push to the resident, and call.missed in the feed, with the links
    await until(lambda: _first(resident.client.received, "missed_call", call_id) is not None, 10)
    missed = _first(resident.client.received, "missed_call", call_id)
    payload = missed.frame["payload"]
    assert payload["snapshot_url"] == f"/v1/me/calls/{call_id}/snapshot.jpg"
    assert payload["open_door_url"] == f"/v1/me/calls/{call_id}/open-door"
    feed = await world.pool.fetchrow(
        "SELECT data::text AS data FROM events WHERE call_id = $1 AND type = 'call.missed'", call_id
    )
    assert feed is not None and f'"snapshot_url": "/v1/calls/{call_id}/snapshot.jpg"' in feed["data"]

    # a stranger may not act on the call; the resident opens the door remotely
    r = await resident.client.http.post(
        f"/v1/me/calls/{call_id}/open-door", headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 403 and r.json()["type"].endswith("/not-a-party")
    r = await resident.client.http.post(f"/v1/me/calls/{call_id}/open-door")
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["result"]) == ("open_door", "done")
    assert isinstance(door.door, LoggingDoor) and len(door.door.openings) == 1
    view = await world.backend.call(call_id)
    action = next(e for e in view["events"] if e["name"] == "customAction")
    assert action["data"]["after_miss"] is True and action["party"] == party_json(resident.party)
    result = next(e for e in view["events"] if e["name"] == "customActionResult")
    assert result["data"]["result"] == "done" and result["party"] == party_json(door.party)

    # call back: a new call from the resident to the door, which answers by itself
    r = await resident.client.http.post(f"/v1/me/calls/{call_id}/call-back")
    assert r.status_code == 201, r.text
    back_id = r.json()["call_id"]
    assert back_id == f"{call_id}-cb1"
    back = resident.sessions[back_id] = CallSession(back_id, "caller", room_type="video")
    resident.media = MediaSpec(audio="tone", video=None, tone_hz=880, receive=("audio", "video"))
    await resident.join(back)
    talk = await poll(lambda: world.backend.call(back_id), lambda v: v["phase"] == "talk", 20, "talk")
    assert talk["answered_by"] == party_json(door.party) and talk["caller"] == party_json(resident.party)
    assert await resident.hang_up(back_id) == 200
    await world.wait_ended(back_id, 15)
    view = await world.backend.call(call_id)
    [cb] = [e for e in view["events"] if e["name"] == "callBack"]
    assert cb["data"]["new_call_id"] == back_id and cb["party"] == party_json(resident.party)


async def test_directory_edit_reaches_a_ringing_call(world: World, agents: list[Any]) -> None:
    a, b, c = await world.residents(3, "unit")
    unit_id = f"u-{uuid.uuid4().hex[:6]}"
    unit = {
        "id": unit_id,
        "name": f"Unit {unit_id}",
        "residents": [a.id, b.id, c.id],
        "policy": {"ring_timeout_s": 4},
    }
    r = await world.backend.http.post("/v1/units", json=unit)
    assert r.status_code == 201, r.text
    door = await device_agent(world, agents, "LOBBY-1", MediaSpec(video=None))
    session = await door.place_call(unit_id=unit_id, room_type="voice")
    call_id = session.call_id
    await poll(
        lambda: world.backend.call(call_id),
        lambda v: any(e["name"] == "ringing" for e in v["events"]),
        15,
        "ringing a",
    )
    # b moves out while a rings
    r = await world.backend.http.put(f"/v1/units/{unit_id}", json=unit | {"residents": [a.id, c.id]})
    assert r.status_code == 200, r.text
    view = await world.wait_ended(call_id, 30)
    assert [t["listener"]["id"] for t in view["attempts"]] == [a.id, c.id]
    [changed] = [e for e in view["events"] if e["name"] == "planChanged"]
    assert changed["data"]["removed"] == [b.key()] and changed["reason"] == f"unit {unit_id} updated"
    names = [e["name"] for e in view["events"] if e["room_id"] is None]
    assert names.index("planChanged") < names.index("escalated")


def _first(received: list[Any], type_: str, call_id: str) -> Any:
    return next((m for m in received if m.type == type_ and m.call_id == call_id), None)

"""The embedded stack with ``media_enabled``: PostgreSQL, Temporal, worker (with the media
activities), API and the media bridge as processes; the lobby door calls a resident of
unit 101 through REST with a recording policy, both exchange SDP on
``/v1/calls/{id}/media`` with their own tokens, and the call's join and talk follow their
media (joinedRoomByCaller, then calling, then hangUpVoip); the bridge process listens for
media on 127.0.0.1 only, and at the end the workflow closes the room: ``callEnded``
carries the traffic and the recording, which holds the talk's audio.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import av
import httpx

from media.network import MediaNetwork, udp_addresses
from media.peer import ClientPeer, ToneTrack
from ringflow.client import Backend
from ringflow.contracts.common import Party, PartyKind
from ringflow.directory_load import load_building, read_building
from ringflow.stack.embedded import EmbeddedStack, isolated_settings
from store.db import create_pool
from tests.fakes import until

BUILDING = Path(__file__).resolve().parent.parent / "examples" / "building.yaml"
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")


async def view_until(backend: Backend, call_id: str, pred: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await backend.call(call_id)
        if pred(view):
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)


def names(view: dict[str, Any]) -> list[str]:
    return [e["name"] for e in view["events"]]


async def test_call_with_media_on_the_embedded_stack(tmp_path: Path) -> None:
    MediaNetwork().install()
    recordings = tmp_path / "recordings"
    settings = isolated_settings(tmp_path / "data", media_enabled=True, media_recordings_dir=recordings)
    async with EmbeddedStack(settings, ui=False) as stack:
        pool = await create_pool(stack.settings.database_url, min_size=1, max_size=2)
        try:
            await load_building(pool, read_building(BUILDING))
        finally:
            await pool.close()
        backend = Backend(stack.api_url, stack.settings.api_key)
        door, resident = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
        try:
            unit = (await backend.http.get("/v1/units/101")).raise_for_status().json()
            who = Party(kind=PartyKind.USER, id=unit["residents"][0])
            tokens = {p.key(): await backend.token(p) for p in (LOBBY, who)}
            body = {
                "caller": LOBBY.model_dump(mode="json"),
                "callees": [who.model_dump(mode="json")],
                "policy": {"record_media": True},
            }
            r = await backend.place_call(body, f"media-{uuid.uuid4().hex[:8]}")
            call_id = r.raise_for_status().json()["call_id"]
            view = await view_until(backend, call_id, lambda v: v["phase"] == "wait" and v["attempts"])
            assert "joinedRoomByCaller" not in names(view)  # media decides, not the ring

            async with httpx.AsyncClient(base_url=stack.api_url) as http:

                async def join(party: Party, peer: ClientPeer) -> None:
                    r = await http.post(
                        f"/v1/calls/{call_id}/media",
                        json={"sdp": await peer.offer(), "type": "offer"},
                        headers={"Authorization": f"Bearer {tokens[party.key()]}"},
                    )
                    assert r.status_code == 200, r.text
                    await peer.accept(r.json()["sdp"])

                await join(LOBBY, door)
                await view_until(backend, call_id, lambda v: "joinedRoomByCaller" in names(v))
                r = await http.post(
                    f"/v1/calls/{call_id}/answer", headers={"Authorization": f"Bearer {tokens[who.key()]}"}
                )
                assert r.status_code == 200, r.text
                await join(who, resident)
                view = await view_until(backend, call_id, lambda v: v["phase"] == "talk")
                await until(lambda: door.heard() >= 10 and resident.heard() >= 10)
                async with httpx.AsyncClient(
                    base_url=stack.settings.media_url, headers={"X-API-Key": stack.settings.api_key}
                ) as node:
                    info = (await node.get("/node")).raise_for_status().json()
                pids = [p["pid"] for p in info["processes"] if p["rooms"]]  # the room's media process
                assert len(pids) == 1 and udp_addresses(pids[0]) == {"127.0.0.1"}
                r = await http.post(
                    f"/v1/calls/{call_id}/hang-up", headers={"Authorization": f"Bearer {tokens[LOBBY.key()]}"}
                )
                assert r.status_code == 200, r.text
            view = await view_until(backend, call_id, lambda v: "callEnded" in names(v))
            assert view["end_reason"] == "hangUpVoip" and view["answered_by"] == who.model_dump(mode="json")
            seen = names(view)
            assert seen.index("joinedRoomByCaller") < seen.index("answered") < seen.index("calling")
            # the workflow closed the room: its traffic and recording are in callEnded
            [ended] = [e for e in view["events"] if e["name"] == "callEnded"]
            traffic = {t["party"]["id"]: t for t in ended["data"]["traffic"]}
            assert set(traffic) == {LOBBY.id, who.id}
            assert all(t["bytes_sent"] > 0 and t["packets_received"] > 0 for t in traffic.values())
            assert ended["data"]["recording"] == str(recordings / f"{call_id}.mkv")
            with av.open(ended["data"]["recording"]) as container:
                assert sum(1 for _ in container.decode(audio=0)) >= 10  # the door's voice
            async with httpx.AsyncClient(
                base_url=stack.settings.media_url, headers={"X-API-Key": stack.settings.api_key}
            ) as bridge:
                assert (await bridge.get("/rooms")).raise_for_status().json() == []
        finally:
            await door.close()
            await resident.close()
            await backend.aclose()

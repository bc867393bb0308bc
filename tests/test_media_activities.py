"""``MediaActivities`` against the real bridge control API (``media.server`` under uvicorn on
127.0.0.1, a reporter that keeps the signals): the talker set by ``connect`` routes a real
call's audio, ``close_room`` returns the final stats (again on a retry, None when unknown),
a refused request is non-retryable and a bridge that is down raises for a retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.exceptions import ApplicationError

from activities.media import MediaActivities
from media.bridge import Bridge
from media.models import PeerOffer, Role
from media.network import MediaNetwork
from media.peer import ClientPeer, ToneTrack
from media.server import create_bridge_app
from ringflow.contracts.media import MediaConnectInput
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from tests.fakes import LOBBY, until, user
from tests.media_helpers import Recorder, serve

BOB = user("bob")


@pytest_asyncio.fixture
async def bridge_settings(tmp_path: Path) -> AsyncIterator[tuple[Settings, Bridge]]:
    MediaNetwork().install()
    port = free_port()
    settings = Settings(
        media_enabled=True,
        media_url=f"http://127.0.0.1:{port}",
        media_port=port,
        media_recordings_dir=tmp_path / "recordings",
    )
    app = create_bridge_app(settings, Recorder())
    async for _ in serve(app, port):
        yield settings, app.state.bridge


async def test_connect_routes_the_talk_and_close_room_returns_the_traffic(
    bridge_settings: tuple[Settings, Bridge],
) -> None:
    settings, bridge = bridge_settings
    media = MediaActivities(settings)
    door, bob = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
    try:
        for peer, party, role in ((door, LOBBY, Role.CALLER), (bob, BOB, Role.LISTENER)):
            answer = await bridge.offer("call-7", PeerOffer(party=party, role=role, sdp=await peer.offer()))
            await peer.accept(answer.sdp)
        await until(lambda: door.pc.connectionState == bob.pc.connectionState == "connected")
        assert door.heard() == 0 and bob.heard() == 0  # no talker: nobody hears anybody
        inp = MediaConnectInput(call_id="call-7", listener=BOB, record=True)
        await media.connect(inp)
        await media.connect(inp)  # a retry changes nothing
        await until(lambda: door.heard() >= 25 and bob.heard() >= 25)
        [room] = bridge.info()
        assert room.talker == BOB and room.recording == str(settings.media_recordings_dir / "call-7.mkv")
        stats = await media.close_room("call-7")
        assert stats is not None and stats.call_id == "call-7" and bridge.rooms == {}
        assert {t.party.key(): t.bytes_sent > 0 for t in stats.parties} == {
            LOBBY.key(): True,
            BOB.key(): True,
        }
        assert stats.recording == str(settings.media_recordings_dir / "call-7.mkv")
        assert await media.close_room("call-7") == stats  # the retry of a close that went through
        assert await media.close_room("call-unknown") is None
        with pytest.raises(ApplicationError) as refused:  # not an id: 422, retrying cannot help
            await media.connect(MediaConnectInput(call_id="-bad", listener=BOB))
        assert refused.value.non_retryable and refused.value.type == "MediaBridgeRefused"
    finally:
        await door.close()
        await bob.close()
        await media.aclose()


async def test_bridge_down_raises_for_a_retry() -> None:
    media = MediaActivities(
        Settings(media_url=f"http://127.0.0.1:{free_port()}", media_request_timeout_s=2.0)
    )
    try:
        with pytest.raises(httpx.ConnectError):
            await media.connect(MediaConnectInput(call_id="call-7", listener=BOB))
        with pytest.raises(httpx.ConnectError):
            await media.close_room("call-7")
    finally:
        await media.aclose()

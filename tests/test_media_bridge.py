"""The media bridge on its own: real aiortc peers on 127.0.0.1 sending a generated tone
through ``media.bridge.Bridge``, a recording reporter in place of Temporal.

Relay both ways, only loopback sockets and candidates, the connection states that
become ``joined`` / ``join_failed`` / ``media_lost``, garbage SDP, foreign candidates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from media.bridge import Bridge, InvalidSdp
from media.models import PeerOffer, Role
from media.network import MediaNetwork, candidate_addresses, udp_addresses
from media.peer import ClientPeer, ToneTrack
from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party, PartyKind
from tests.fakes import until

LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
BOB = Party(kind=PartyKind.USER, id="bob")


class Recorder:
    """A ``Reporter`` that keeps ``(call_id, signal, JoinInput)``; rooms end on ``end(room_id)``."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, str, JoinInput]] = []
        self.ended: dict[str, asyncio.Event] = {}

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        self.signals.append((call_id, signal, inp))

    async def room_ended(self, room_id: str) -> None:
        await self.ended.setdefault(room_id, asyncio.Event()).wait()

    def of(self, party: Party) -> list[str]:
        return [s for _, s, inp in self.signals if inp.party == party]


@pytest.fixture
def network() -> MediaNetwork:
    net = MediaNetwork()
    net.install()
    return net


@pytest_asyncio.fixture
async def bridge(network: MediaNetwork) -> AsyncIterator[Bridge]:
    b = Bridge(network, Recorder(), connect_timeout_s=1.5, disconnect_grace_s=0.5)
    try:
        yield b
    finally:
        await b.close()


def recorder(bridge: Bridge) -> Recorder:
    assert isinstance(bridge.reporter, Recorder)
    return bridge.reporter


async def join(bridge: Bridge, peer: ClientPeer, party: Party, role: Role, room: str = "call-1.1") -> str:
    """Offer ``peer`` to the bridge, apply the answer; the answer's SDP."""
    answer = await bridge.offer(
        room, PeerOffer(call_id="call-1", party=party, role=role, sdp=await peer.offer())
    )
    await peer.accept(answer.sdp)
    return answer.sdp


async def test_audio_relayed_both_ways_on_loopback_only(bridge: Bridge) -> None:
    caller, listener = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
    try:
        answer = await join(bridge, caller, LOBBY, Role.CALLER)
        await until(lambda: recorder(bridge).of(LOBBY) == ["joined"])
        await join(bridge, listener, BOB, Role.LISTENER)
        # every frame is a decoded Opus frame carrying the other party's tone
        await until(lambda: caller.heard() >= 25 and listener.heard() >= 25)
        assert recorder(bridge).of(BOB) == ["joined"]
        assert [c for c, _, _ in recorder(bridge).signals] == ["call-1", "call-1"]
        assert "opus/48000" in answer.lower()
        assert set(candidate_addresses(answer)) == {"127.0.0.1"}
        assert set(candidate_addresses(caller.pc.localDescription.sdp)) == {"127.0.0.1"}
        assert udp_addresses() == {"127.0.0.1"}  # this process: the bridge and both peers
        [info] = bridge.info()
        assert {(p.role, p.state, p.joined) for p in info.peers} == {
            (Role.CALLER, "connected", True),
            (Role.LISTENER, "connected", True),
        }
    finally:
        await caller.close()
        await listener.close()


async def test_peer_that_leaves_after_joining_is_media_lost(bridge: Bridge) -> None:
    caller, listener = ClientPeer([ToneTrack()]), ClientPeer([ToneTrack()])
    try:
        await join(bridge, caller, LOBBY, Role.CALLER)
        await join(bridge, listener, BOB, Role.LISTENER)
        await until(lambda: listener.heard() >= 5)
        await listener.close()
        await until(lambda: recorder(bridge).of(BOB) == ["joined", "media_lost"])
        lost = recorder(bridge).signals[-1][2]
        assert lost.room_id == "call-1.1" and lost.error
        assert recorder(bridge).of(LOBBY) == ["joined"]
        [info] = bridge.info()
        assert [p.role for p in info.peers] == [Role.CALLER]
        # the listener comes back (a new offer): the caller hears it again
        back = ClientPeer([ToneTrack()])
        try:
            heard = caller.heard()
            await join(bridge, back, BOB, Role.LISTENER)
            await until(lambda: caller.heard() >= heard + 10 and back.heard() >= 10)
            assert recorder(bridge).of(BOB) == ["joined", "media_lost", "joined"]
        finally:
            await back.close()
    finally:
        await caller.close()


async def test_peer_that_vanishes_silently_is_media_lost(bridge: Bridge) -> None:
    caller, listener = ClientPeer([ToneTrack()]), ClientPeer([ToneTrack()])
    try:
        await join(bridge, caller, LOBBY, Role.CALLER)
        await join(bridge, listener, BOB, Role.LISTENER)
        await until(lambda: caller.heard() >= 5)
        # the resident's phone drops off the network: its sockets close, no DTLS/RTCP goodbye
        await listener.pc.getTransceivers()[0].receiver.transport.transport.stop()
        await until(lambda: recorder(bridge).of(BOB) == ["joined", "media_lost"], timeout=5)
        assert recorder(bridge).signals[-1][2].error == "no media for 0.5 s"
        assert recorder(bridge).of(LOBBY) == ["joined"]
    finally:
        await caller.close()
        await listener.close()


async def test_peer_that_never_connects_is_join_failed(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        # the answer never reaches the peer: its ICE never starts
        await bridge.offer(
            "call-1.1", PeerOffer(call_id="call-1", party=LOBBY, role=Role.CALLER, sdp=await caller.offer())
        )
        await until(lambda: recorder(bridge).of(LOBBY) == ["join_failed"], timeout=10)
        failed = recorder(bridge).signals[0][2]
        assert failed.error == "no media connection in 1.5 s"
        assert bridge.info()[0].peers == []
    finally:
        await caller.close()


async def test_room_closes_when_its_workflow_ends(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        await join(bridge, caller, LOBBY, Role.CALLER)
        await until(lambda: caller.pc.connectionState == "connected")
        pc = bridge.rooms["call-1.1"].peers[Role.CALLER].pc
        recorder(bridge).ended.setdefault("call-1.1", asyncio.Event()).set()
        # (the caller learns it from DTLS close_notify, best effort over UDP, or ICE consent)
        await until(lambda: not bridge.rooms and pc.connectionState == "closed")
        assert recorder(bridge).of(LOBBY) == ["joined"]  # closing a room is not a media fact
    finally:
        await caller.close()


@pytest.mark.parametrize(
    "sdp",
    [
        "garbage",
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n",
    ],
)
async def test_garbage_sdp_is_refused_and_nothing_kept(bridge: Bridge, sdp: str) -> None:
    with pytest.raises(InvalidSdp):
        await bridge.offer("call-1.1", PeerOffer(call_id="call-1", party=LOBBY, role=Role.CALLER, sdp=sdp))
    assert bridge.rooms == {} and recorder(bridge).signals == []


async def test_remote_candidates_outside_allowed_networks_are_ignored(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        sdp = await caller.offer()
        foreign = "a=candidate:9 1 udp 2130706431 192.0.2.2 9 typ host\r\n"
        mdns = "a=candidate:8 1 udp 2130706431 3f1c.local 9 typ host\r\n"
        sdp = sdp.replace("a=end-of-candidates", foreign + mdns + "a=end-of-candidates", 1)
        assert "192.0.2.2" in candidate_addresses(sdp)
        await bridge.offer("call-1.1", PeerOffer(call_id="call-1", party=LOBBY, role=Role.CALLER, sdp=sdp))
        pc = bridge.rooms["call-1.1"].peers[Role.CALLER].pc
        ice = pc.getTransceivers()[0].receiver.transport.transport
        assert {c.ip for c in ice.getRemoteCandidates()} == {"127.0.0.1"}
    finally:
        await caller.close()


def test_announced_ip_rewrites_host_candidates() -> None:
    net = MediaNetwork(announced_ip="203.0.113.7")
    sdp = "c=IN IP4 127.0.0.1\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
    assert net.announce(sdp) == (
        "c=IN IP4 203.0.113.7\r\na=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\n"
    )
    assert MediaNetwork().announce(sdp) == sdp
    assert MediaNetwork().rtc_configuration().iceServers == []

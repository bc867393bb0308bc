"""The media bridge on its own: real aiortc peers on 127.0.0.1 sending a generated tone
(and a generated video) through ``media.bridge.Bridge``, a recording reporter in place
of Temporal. One room per building call (``docs/media.md``).

Routing by talker (early video to every listener, the door's audio to the talker only,
only the talker heard by the door, switching without renegotiation), traffic stats that
survive a peer replacement, the recording, only loopback sockets and candidates, the
connection states that become ``joined`` / ``join_failed`` / ``media_lost``, garbage SDP,
foreign candidates.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest
import pytest_asyncio
from aiortc import RTCPeerConnection
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from media.bridge import Bridge, InvalidSdp
from media.forward import KEYFRAME_MIN_INTERVAL_S
from media.models import PeerOffer, Role, TalkerUpdate
from media.network import MediaNetwork, candidate_addresses, udp_addresses
from media.peer import ClientPeer, ToneTrack
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.media import PartyTraffic, RoomStats
from tests.fakes import until
from tests.media_helpers import Recorder, door_camera

LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
BOB = Party(kind=PartyKind.USER, id="bob")
CAROL = Party(kind=PartyKind.USER, id="carol")
CALL = "call-1"


@pytest.fixture
def network() -> MediaNetwork:
    net = MediaNetwork()
    net.install()
    return net


@pytest_asyncio.fixture
async def bridge(network: MediaNetwork, tmp_path: Path) -> AsyncIterator[Bridge]:
    b = Bridge(
        network, Recorder(), connect_timeout_s=1.5, disconnect_grace_s=1.0, recordings_dir=tmp_path / "rec"
    )
    try:
        yield b
    finally:
        await b.close()


def recorder(bridge: Bridge) -> Recorder:
    assert isinstance(bridge.reporter, Recorder)
    return bridge.reporter


async def join(bridge: Bridge, peer: ClientPeer, party: Party, role: Role = Role.LISTENER) -> str:
    """Offer ``peer`` to room ``CALL``, apply the answer; the answer's SDP."""
    answer = await bridge.offer(CALL, PeerOffer(party=party, role=role, sdp=await peer.offer()))
    await peer.accept(answer.sdp)
    return answer.sdp


def frames(peer: ClientPeer, kind: str) -> int:
    """Every frame ``peer`` received on its ``kind`` tracks (silent ones too)."""
    return sum(r.frames for r in peer.received if r.kind == kind)


def traffic(stats: RoomStats | None, party: Party) -> PartyTraffic:
    assert stats is not None
    [found] = [t for t in stats.parties if t.party == party]
    return found


async def stats_until(bridge: Bridge, pred: object, timeout: float = 10.0) -> RoomStats:
    """Poll ``bridge.stats(CALL)`` until ``pred(stats)`` holds (RTCP reports come every 0.5-1.5 s)."""
    assert callable(pred)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = await bridge.stats(CALL)
        if stats is not None and pred(stats):
            return stats
        assert loop.time() < deadline, stats
        await asyncio.sleep(0.1)


async def test_talker_and_caller_hear_each_other_on_loopback_only(bridge: Bridge) -> None:
    caller, listener = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
    try:
        answer = await join(bridge, caller, LOBBY, Role.CALLER)
        await until(lambda: recorder(bridge).of(LOBBY) == ["joined"])
        await join(bridge, listener, BOB)
        await until(lambda: recorder(bridge).of(BOB) == ["joined"])
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        # every frame is a decoded Opus frame carrying the other party's tone
        await until(lambda: caller.heard() >= 25 and listener.heard() >= 25)
        assert [(c, inp.room_id) for c, _, inp in recorder(bridge).signals] == [(CALL, CALL), (CALL, CALL)]
        assert "opus/48000" in answer.lower()
        assert set(candidate_addresses(answer)) == {"127.0.0.1"}
        assert set(candidate_addresses(caller.pc.localDescription.sdp)) == {"127.0.0.1"}
        assert udp_addresses() == {"127.0.0.1"}  # this process: the bridge and both peers
        [info] = bridge.info()
        assert info.call_id == CALL and info.talker == BOB
        assert {(p.party.key(), p.role, p.state, p.joined) for p in info.peers} == {
            (LOBBY.key(), Role.CALLER, "connected", True),
            (BOB.key(), Role.LISTENER, "connected", True),
        }
    finally:
        await caller.close()
        await listener.close()


async def test_early_media_then_only_the_talker_is_heard(bridge: Bridge) -> None:
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880, amplitude=0.0), door_camera()])  # bob's phone sends silence
    carol = ClientPeer([ToneTrack(660), door_camera()])  # carol's sends a loud tone
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        await join(bridge, bob, BOB)
        await join(bridge, carol, CAROL)
        # ringing: both listeners see the door, nobody hears it, the door gets nothing
        # (ICE, DTLS and the first VP8 keyframes of three peers: slow on a loaded machine)
        await until(lambda: frames(bob, "video") >= 10 and frames(carol, "video") >= 10, timeout=30)
        assert frames(bob, "audio") == frames(carol, "audio") == 0
        assert frames(door, "audio") == frames(door, "video") == 0
        # bob answers: the door and bob hear each other; carol still only sees the door
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: bob.heard() >= 25 and frames(door, "audio") >= 25 and frames(door, "video") >= 5)
        assert door.heard() == 0  # what the door hears is bob's silence, never carol's tone
        assert frames(carol, "audio") == 0
        seen = frames(carol, "video")
        await until(lambda: frames(carol, "video") >= seen + 5)
        # the talker changes (no renegotiation): the door hears carol at once, bob nothing more
        await bridge.set_talker(CALL, TalkerUpdate(party=CAROL))
        await until(lambda: door.heard() >= 10 and carol.heard() >= 10)
        heard_by_bob = frames(bob, "audio")
        await until(lambda: carol.heard() >= 35)
        assert frames(bob, "audio") <= heard_by_bob + 1  # at most a frame in flight
        assert frames(bob, "video") > seen  # bob still sees the door
    finally:
        await door.close()
        await bob.close()
        await carol.close()


async def test_talker_set_before_anyone_offered(bridge: Bridge) -> None:
    info = await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
    assert info.talker == BOB and info.peers == [] and [r.call_id for r in bridge.info()] == [CALL]
    again = await bridge.set_talker(CALL, TalkerUpdate(party=BOB))  # a retried activity
    assert again == info
    door, bob = ClientPeer([ToneTrack(440)]), ClientPeer([ToneTrack(880)])
    try:
        await join(bridge, bob, BOB)
        await join(bridge, door, LOBBY, Role.CALLER)
        await until(lambda: door.heard() >= 10 and bob.heard() >= 10)
    finally:
        await door.close()
        await bob.close()


async def test_traffic_both_ways_survives_a_peer_replacement(bridge: Bridge) -> None:
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880)])
    bob2 = ClientPeer([ToneTrack(880)])
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        await join(bridge, bob, BOB)
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: door.heard() >= 10 and bob.heard() >= 10)
        first = await stats_until(
            bridge,
            lambda s: (
                traffic(s, LOBBY).video_bytes_received > 0
                and traffic(s, LOBBY).audio_bytes_received > 0
                and traffic(s, BOB).bytes_received > 0
            ),
        )
        door_t, bob_t = traffic(first, LOBBY), traffic(first, BOB)
        assert door_t.role == "caller" and bob_t.role == "listener"
        assert door_t.bytes_sent > 0 and door_t.packets_sent > 0 and door_t.packets_received > 0
        assert bob_t.bytes_sent > 0 and bob_t.packets_sent > 0 and bob_t.packets_received > 0
        assert bob_t.video_bytes_received == 0 and bob_t.audio_bytes_received == bob_t.bytes_received
        assert door_t.bytes_received == door_t.audio_bytes_received + door_t.video_bytes_received
        # bob's app reconnects: a second offer replaces his peer, his first peer's traffic stays
        await join(bridge, bob2, BOB)
        kept = traffic(await bridge.stats(CALL), BOB)
        assert kept.bytes_sent >= bob_t.bytes_sent and kept.bytes_received >= bob_t.bytes_received
        assert [p.party for p in bridge.info()[0].peers].count(BOB) == 1
        await until(lambda: bob2.heard() >= 10)
        more = await stats_until(
            bridge,
            lambda s: (
                traffic(s, BOB).bytes_sent > kept.bytes_sent
                and traffic(s, BOB).bytes_received > kept.bytes_received
            ),
        )
        final = await bridge.close_room(CALL)
        assert final is not None and CALL not in bridge.rooms
        assert traffic(final, BOB).bytes_sent >= traffic(more, BOB).bytes_sent
        assert traffic(final, LOBBY).bytes_received >= traffic(more, LOBBY).bytes_received
        assert final.duration_s > 0 and final.recording is None
        assert await bridge.close_room(CALL) == final  # a retried close gets the same answer
        assert await bridge.stats(CALL) == final
        assert await bridge.close_room("call-unknown") is None
        assert recorder(bridge).of(BOB) == ["joined", "joined"]  # a replaced peer is not lost
    finally:
        await door.close()
        await bob.close()
        await bob2.close()


async def test_recording_of_the_talk(bridge: Bridge) -> None:
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880)])
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        await join(bridge, bob, BOB)
        info = await bridge.set_talker(CALL, TalkerUpdate(party=BOB, record=True))
        path = bridge.recordings_dir / f"{CALL}.mkv"
        assert info.recording == str(path) and path.parent.is_dir()
        assert await bridge.set_talker(CALL, TalkerUpdate(party=BOB, record=True)) == info  # retried
        await until(lambda: door.heard() >= 50 and bob.heard() >= 50)  # about a second of talk
        # the talker leaves the room's routing: the recording stops and its file is complete
        info = await bridge.set_talker(CALL, TalkerUpdate(party=None))
        assert info.recording is None
        with av.open(str(path)) as container:
            kinds = sorted(s.type for s in container.streams)
            assert kinds == ["audio", "audio", "video"]  # door audio + video, bob's audio
            decoded = sum(1 for _ in container.decode(audio=0))
        assert decoded >= 10  # audio frames of the door, decodable
        final = await bridge.close_room(CALL)
        assert final is not None and final.recording == str(path) and final.recordings == [str(path)]
    finally:
        await door.close()
        await bob.close()


async def test_talker_change_stops_the_recording(bridge: Bridge) -> None:
    await bridge.set_talker(CALL, TalkerUpdate(party=BOB, record=True))
    first = bridge.recordings_dir / f"{CALL}.mkv"
    assert bridge.info()[0].recording == str(first)
    info = await bridge.set_talker(CALL, TalkerUpdate(party=CAROL, record=True))
    assert info.talker == CAROL and info.recording == str(first)  # bob's got no media: no file, name reused
    info = await bridge.set_talker(CALL, TalkerUpdate(party=CAROL, record=False))
    assert info.recording is None and info.talker == CAROL
    final = await bridge.close_room(CALL)
    assert final is not None and final.recording is None and final.recordings == []
    assert not first.exists()


async def test_listener_that_leaves_after_joining_is_media_lost(bridge: Bridge) -> None:
    caller, listener = ClientPeer([ToneTrack()]), ClientPeer([ToneTrack()])
    try:
        await join(bridge, caller, LOBBY, Role.CALLER)
        await join(bridge, listener, BOB)
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: listener.heard() >= 5)
        await listener.close()
        await until(lambda: recorder(bridge).of(BOB) == ["joined", "media_lost"])
        lost = recorder(bridge).signals[-1][2]
        assert lost.room_id == CALL and lost.error
        assert recorder(bridge).of(LOBBY) == ["joined"]
        [info] = bridge.info()
        assert [p.role for p in info.peers] == [Role.CALLER]
        # the listener comes back (a new offer): the caller hears it again
        back = ClientPeer([ToneTrack()])
        try:
            heard = caller.heard()
            await join(bridge, back, BOB)
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
        await join(bridge, listener, BOB)
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: caller.heard() >= 5)
        # the resident's phone drops off the network: its sockets close, no DTLS/RTCP goodbye
        await listener.pc.getTransceivers()[0].receiver.transport.transport.stop()
        await until(lambda: recorder(bridge).of(BOB) == ["joined", "media_lost"], timeout=6)
        assert recorder(bridge).signals[-1][2].error == "no media for 1 s"
        assert recorder(bridge).of(LOBBY) == ["joined"]
    finally:
        await caller.close()
        await listener.close()


async def test_peer_that_never_connects_is_join_failed(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        # the answer never reaches the peer: its ICE never starts
        await bridge.offer(CALL, PeerOffer(party=LOBBY, role=Role.CALLER, sdp=await caller.offer()))
        await until(lambda: recorder(bridge).of(LOBBY) == ["join_failed"], timeout=10)
        failed = recorder(bridge).signals[0][2]
        assert failed.error == "no media connection in 1.5 s" and failed.room_id == CALL
        assert bridge.info()[0].peers == []
    finally:
        await caller.close()


async def test_room_closes_when_its_building_call_ends(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        await join(bridge, caller, LOBBY, Role.CALLER)
        # joined on the bridge's side too: the client may see "connected" before the bridge
        # does (DTLS), and a room closed before then has nothing to report
        await until(lambda: caller.pc.connectionState == "connected" and recorder(bridge).of(LOBBY))
        pc = bridge.rooms[CALL].peers[LOBBY.key()].pc
        recorder(bridge).ended.setdefault(CALL, asyncio.Event()).set()
        # (the caller learns it from DTLS close_notify, best effort over UDP, or ICE consent)
        await until(lambda: not bridge.rooms and pc.connectionState == "closed")
        assert recorder(bridge).of(LOBBY) == ["joined"]  # closing a room is not a media fact
        final = await bridge.close_room(CALL)  # the workflow's close after the watch: kept stats
        assert final is not None and [t.party for t in final.parties] == [LOBBY]
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
        await bridge.offer(CALL, PeerOffer(party=LOBBY, role=Role.CALLER, sdp=sdp))
    assert bridge.rooms == {} and recorder(bridge).signals == []


async def test_remote_candidates_outside_allowed_networks_are_ignored(bridge: Bridge) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        sdp = await caller.offer()
        foreign = "a=candidate:9 1 udp 2130706431 192.0.2.2 9 typ host\r\n"
        mdns = "a=candidate:8 1 udp 2130706431 3f1c.local 9 typ host\r\n"
        sdp = sdp.replace("a=end-of-candidates", foreign + mdns + "a=end-of-candidates", 1)
        assert "192.0.2.2" in candidate_addresses(sdp)
        await bridge.offer(CALL, PeerOffer(party=LOBBY, role=Role.CALLER, sdp=sdp))
        pc = bridge.rooms[CALL].peers[LOBBY.key()].pc
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


# ---------------------------------------------------------------- packet-level forwarding


@dataclass
class RtpLog:
    """The RTP headers one client receiver got, before aiortc handled them: per packet
    (SSRC, sequence number, timestamp, arrival ``time.monotonic()``, payload type);
    ``drop(seq, retransmission)`` says which to discard (induced loss)."""

    packets: list[tuple[int, int, int, float, int]] = field(default_factory=list)
    drop: Callable[[int, bool], bool] = lambda seq, rtx: False
    dropped: list[int] = field(default_factory=list)
    media_ssrc: int | None = None

    def media(self) -> list[tuple[int, int, int, float, int]]:
        """The packets on the media SSRC (the first one seen), in arrival order."""
        return [p for p in self.packets if p[0] == self.media_ssrc]

    def originals(self) -> set[int]:
        """Every sequence number of the media stream that arrived: sent, or retransmitted
        (RTX: the original sequence number is the payload's first two bytes, RFC 4588)."""
        return {p[1] for p in self.packets}


def log_rtp(receiver: RTCRtpReceiver, log: RtpLog) -> None:
    """Record (and maybe drop) what reaches ``receiver``, ahead of whatever handles it now."""
    handle = receiver._handle_rtp_packet

    async def logged(packet: RtpPacket, arrival_time_ms: int) -> None:
        if log.media_ssrc is None:
            log.media_ssrc = packet.ssrc
        rtx = packet.ssrc != log.media_ssrc
        seq = (
            int.from_bytes(packet.payload[:2], "big")
            if rtx and len(packet.payload) >= 2
            else packet.sequence_number
        )
        if not (rtx and len(packet.payload) < 2) and log.drop(seq, rtx):
            log.dropped.append(seq)
            return
        if not (rtx and len(packet.payload) < 2):  # RTX padding carries nothing
            log.packets.append((packet.ssrc, seq, packet.timestamp, time.monotonic(), packet.payload_type))
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = logged  # type: ignore[method-assign]


def receiver_of(peer: ClientPeer | RTCPeerConnection, kind: str) -> RTCRtpReceiver:
    pc = peer.pc if isinstance(peer, ClientPeer) else peer
    [transceiver] = [t for t in pc.getTransceivers() if t.kind == kind]
    return transceiver.receiver


async def test_forwarded_rtp_is_continuous_across_a_talker_switch(bridge: Bridge) -> None:
    """The door's audio stream keeps one SSRC and gap-free sequence numbers while the bridge
    forwards bob's, then carol's packets; at the switch the timestamp advances by the
    elapsed time (48 kHz), never back. Forwarded as RTP: no jitter buffer, no decoding."""
    door = ClientPeer([ToneTrack(440)])
    bob = ClientPeer([ToneTrack(880, amplitude=0.0)])  # silence
    carol = ClientPeer([ToneTrack(660)])  # a loud tone
    heard = RtpLog()
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        log_rtp(receiver_of(door, "audio"), heard)
        await join(bridge, bob, BOB)
        await join(bridge, carol, CAROL)
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: door.frames("audio") >= 50)
        assert door.heard() == 0  # bob's silence
        await asyncio.sleep(0.3)
        switched = time.monotonic()
        await bridge.set_talker(CALL, TalkerUpdate(party=CAROL))
        await until(lambda: door.heard() >= 50)
        packets = heard.media()
        assert {p[0] for p in heard.packets} == {heard.media_ssrc}  # one stream, no RTX needed
        assert len({p[4] for p in packets}) == 1
        steps = list(itertools.pairwise(packets))
        assert all((b[1] - a[1]) & 0xFFFF == 1 for a, b in steps), [
            (a[1], b[1]) for a, b in steps if (b[1] - a[1]) & 0xFFFF != 1
        ]
        ts_steps = [((b[2] - a[2]) & 0xFFFFFFFF, b[3] - a[3], b[3]) for a, b in steps]
        assert all(0 < d < 1 << 31 for d, _, _ in ts_steps)  # forward only (mod 2^32)
        jumps = [(d, dt) for d, dt, at in ts_steps if d != 960]  # 20 ms Opus frames otherwise
        switch = [(d, dt) for d, dt, at in ts_steps if at >= switched and d != 960][:1]
        assert switch, jumps
        [(d, dt)] = switch
        assert abs(d / 48000 - dt) < 0.1, (d, dt)  # the elapsed time at the switch, within 100 ms
        relay = bridge.rooms[CALL].relay
        assert relay.rtp_forwarded > 100 and relay.packets_in == 0 and relay.decoded_frames == 0
    finally:
        for peer in (door, bob, carol):
            await peer.close()


async def test_lost_video_packets_are_retransmitted_or_asked_of_the_door(bridge: Bridge) -> None:
    """Loss on both legs of the door's video to bob: packets bob misses are retransmitted
    from the bridge's history of what it sent (bob's NACK); packets the bridge itself
    missed (it drops the first copy and the first retransmission of some) are asked of the
    door again when bob's NACK finds them missing (relayed NACK). Bob ends up with every
    sequence number and keeps decoding pictures."""
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880)], receive=("video",))
    at_bob = RtpLog(drop=lambda seq, rtx: not rtx and seq % 17 == 0)
    at_bridge_seen: dict[int, int] = {}

    def bridge_drop(seq: int, rtx: bool) -> bool:
        at_bridge_seen[seq] = at_bridge_seen.get(seq, 0) + 1
        return seq % 13 == 0 and at_bridge_seen[seq] <= 2  # the original and one retransmission

    at_bridge = RtpLog(drop=bridge_drop)
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        log_rtp(receiver_of(bridge.rooms[CALL].peers[LOBBY.key()].pc, "video"), at_bridge)
        await join(bridge, bob, BOB)
        log_rtp(receiver_of(bob, "video"), at_bob)
        await until(lambda: bob.frames("video") >= 10)
        start = bob.frames("video")
        await asyncio.sleep(4.0)
        assert bob.frames("video") - start >= 25  # 10 fps: pictures kept coming
        relay = bridge.rooms[CALL].relay
        assert at_bob.dropped and at_bridge.dropped
        assert relay.nacks_relayed > 0
        got = sorted(at_bob.originals())
        # every sequence number up to shortly before now arrived at bob, the dropped ones again
        recent = [s for s in got if s <= got[-1] - 10]
        assert recent and set(range(recent[0], recent[-1] + 1)) <= set(got), sorted(
            set(range(recent[0], recent[-1] + 1)) - set(got)
        )
        assert {s for s in at_bob.dropped if s <= recent[-1]} <= at_bob.originals()
    finally:
        await door.close()
        await bob.close()


async def test_a_listeners_picture_loss_reaches_the_door(bridge: Bridge) -> None:
    """Bob's PLI (RFC 4585 6.3.1) for the video the bridge forwards him is relayed to the
    door's sender, which makes a keyframe."""
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880)], receive=("video",))
    keyframe_requests: list[float] = []
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        [video_sender] = [s for s in door.pc.getSenders() if s.kind == "video"]
        make_keyframe = video_sender._send_keyframe

        def counted() -> None:
            keyframe_requests.append(time.monotonic())
            make_keyframe()

        video_sender._send_keyframe = counted  # type: ignore[method-assign]
        await join(bridge, bob, BOB)
        await until(lambda: bob.frames("video") >= 10)
        await asyncio.sleep(KEYFRAME_MIN_INTERVAL_S + 0.5)
        before = len(keyframe_requests)
        receiver = receiver_of(bob, "video")
        [source] = receiver.getSynchronizationSources()
        for _ in range(3):
            await receiver._send_rtcp_pli(source.source)
            await asyncio.sleep(KEYFRAME_MIN_INTERVAL_S + 0.3)
        assert len(keyframe_requests) - before >= 3
    finally:
        await door.close()
        await bob.close()


async def test_traffic_counts_equal_the_parties_own(bridge: Bridge) -> None:
    """The bridge's per-party packets and bytes are exact: what it received from the door
    equals the door's own ``outbound-rtp`` count, what it sent bob equals bob's
    ``inbound-rtp`` count and its RTP payload bytes (aiortc's ``getStats`` on the clients)."""
    door = ClientPeer([ToneTrack(440), door_camera()])
    bob = ClientPeer([ToneTrack(880)], receive=("video",))
    at_bob = RtpLog()
    try:
        await join(bridge, door, LOBBY, Role.CALLER)
        await join(bridge, bob, BOB)
        log_rtp(receiver_of(bob, "audio"), at_bob)
        log_rtp(receiver_of(bob, "video"), RtpLog())
        await bridge.set_talker(CALL, TalkerUpdate(party=BOB))
        await until(lambda: bob.heard() >= 50 and bob.frames("video") >= 20)
        for track in door.tracks:  # the door stops sending; what is in flight lands
            track.stop()
        await asyncio.sleep(0.5)
        sent = await door.stats()
        room = await bridge.stats(CALL)
        door_t, bob_t = traffic(room, LOBBY), traffic(room, BOB)
        out_packets = sum(k.packets_sent for k in sent.kinds.values())
        out_bytes = sum(k.bytes_sent for k in sent.kinds.values())
        assert (door_t.packets_received, door_t.bytes_received) == (out_packets, out_bytes)
        assert door_t.audio_bytes_received == sent.kind("audio").bytes_sent
        assert door_t.video_bytes_received == sent.kind("video").bytes_sent
        got = await bob.stats()
        assert bob_t.packets_sent == sum(k.packets_received for k in got.kinds.values())
        assert 0 < bob_t.packets_sent <= door_t.packets_received  # none made up
        report = await bob.pc.getStats()
        [audio_in] = [s for s in report.values() if s.type == "inbound-rtp" and s.kind == "audio"]
        assert audio_in.packetsReceived == len(at_bob.packets)
    finally:
        await door.close()
        await bob.close()

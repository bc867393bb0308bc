"""The media bridge: one room per building call (id = ``call_id``), one
``RTCPeerConnection`` per party in it (``docs/media.md``).

The caller (the door) joins once; every listener the escalation rings may join the same
room with its own peer while it rings (early media). A party's offer (complete ICE, no
trickle) creates its peer, and the room on the first offer or talker update; a second
offer of the same party replaces its peer (a reconnect). The bridge answers with its own
candidates only (the configured listen addresses, ``media/network.py``).

Routing follows the room's **talker** (the listener who answered, set by
``MediaActivities.connect`` through :meth:`Bridge.set_talker`):

- the caller's video goes to every listener peer at all times (the resident sees the door
  while it rings);
- the caller's audio goes to the talker only (nobody hears the door before answering);
- the talker's audio and video go to the caller; every other listener's tracks are
  consumed and dropped (the door hears nobody until the answer).

Every peer gets its sender tracks at offer time (:class:`RoomTrack`, one per offered
audio/video section); each picks its source from the room's current state and switches
at once when the talker or a party's peer changes, without renegotiation. Every track a
party sends is watched at once (a drain that notes when its last packet arrived and takes
nothing). All relaying goes through ``Room.subscribe`` (``buffered=False``: a slow
frame consumer drops frames instead of queueing them), on the relay that ``Room.relay``
makes: the one place where the relay is chosen. That is ``media/forward.py``'s
``ForwardingRelay`` (issue 3, "forward, don't transcode"; RTP packets since issue 13):
every bridge peer has ``enable_forwarding``, so where both legs negotiated the same codec
(Opus, VP8: aiortc's codecs) each received RTP packet goes out on the receiving peer's
sender as it arrives, with that sender's SSRC, sequence numbers and timestamps
(continuous across talker switches and re-joins: one ``media.rtpstream.OutStream`` per
sender, which :class:`RoomTrack` hands to every source it follows), without jitter
buffer, depacketization or decoding; NACKs are answered from the sender's history or
relayed to the source, PLI/FIR relayed to the source. Frames are made (and decoded, once
per source) only for a consumer that needs them: another codec, the recorder, the
visitor snapshot.

Connection states drive the call (troubleshooting guide sections 2-6):

- a peer reaching ``connected`` -> ``joined`` (once per peer);
- a peer that never connects within ``connect_timeout_s`` of its offer, or fails or
  closes before connecting -> ``join_failed`` (joinFailCaller / joinFailListener);
- a peer that had connected and then fails, closes, or sends no frame for
  ``disconnect_grace_s`` after having sent some -> ``media_lost`` (abortVoip: "unexpected
  exit, network interruptions", guide sections 3(1) and 6(1)).

Each goes to the :class:`Reporter` (Temporal signals to the building call's workflow
``call_id`` with ``JoinInput(room_id=call_id, party, error)``, ``media/signals.py``),
which routes them by party. A room closes when the reporter says its building call's
workflow ended, on :meth:`Bridge.close_room`, or at :meth:`Bridge.close`; peers the
bridge closes itself are not reported. Traffic per party is exact, counted per RTP packet
(:func:`peer_traffic`); the talk is recorded with ``MediaRecorder`` when asked
(:class:`Recording`). Every peer connection and recorder is closed in ``finally``
paths. Durations are seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av.frame import Frame
from av.packet import Packet

from media.forward import ForwardingRelay, Mode, RelayedTrack, enable_forwarding, tap_of
from media.models import PeerInfo, PeerOffer, Role, RoomInfo, SdpAnswer, TalkerUpdate
from media.network import MediaNetwork
from media.rtpstream import OutStream
from media.snapshot import SnapshotStore, take_snapshot
from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party
from ringflow.contracts.media import PartyTraffic, RoomStats
from ringflow.contracts.messages import Signal

log = logging.getLogger(__name__)

CLOSED_ROOMS_KEPT = 256
"""How many closed rooms' final stats the bridge keeps, so that a retried
``DELETE /rooms/{call_id}`` (``MediaActivities.close_room``) gets the same answer."""


DRAIN_INTERVAL_S = 0.25
"""How often a party's drain notes its last packet arrival, s (``disconnect_grace_s`` is
seconds: a wake-up per packet would cost more than the forwarding)."""


class InvalidSdp(ValueError):
    """The offer is not a usable SDP offer (API: 422 ``invalid-sdp``)."""


class Reporter(Protocol):
    """Where the bridge reports media facts, and how it learns that a room is over."""

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        """Deliver ``signal`` (``joined``/``join_failed``/``media_lost``) for ``call_id``.
        Must not raise (log instead): media keeps flowing whatever the reporter does."""
        ...

    async def room_ended(self, call_id: str) -> None:
        """Return once building call ``call_id``'s workflow has closed (never, if unknown)."""
        ...


@dataclass(eq=False)
class Peer:
    """One party's peer connection in a room."""

    party: Party
    role: Role
    pc: RTCPeerConnection
    joined: bool = False
    ended: bool = False
    accounted: bool = False  # its final traffic is in Room.closed_traffic
    last_frame: float | None = None  # loop.time() of the last packet it sent (its drain)
    timer: asyncio.TimerHandle | None = None  # connect timeout

    def cancel_timer(self) -> None:
        """Cancel the connect timeout, if any."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class Room:
    """A building call's media room: its peers by party key, the tracks each party sends,
    the talker, the recordings, and the traffic of the peers that are gone."""

    call_id: str
    relay: ForwardingRelay = field(default_factory=ForwardingRelay)  # THE relay
    peers: dict[str, Peer] = field(default_factory=dict)  # by Party.key()
    caller: Party | None = None
    talker: Party | None = None
    sources: dict[tuple[str, str], MediaStreamTrack] = field(default_factory=dict)  # (key, kind)
    recording: Recording | None = None
    recordings: list[str] = field(default_factory=list)  # every recording's path, in order
    closed_traffic: dict[str, PartyTraffic] = field(default_factory=dict)  # by Party.key()
    changed: asyncio.Future[None] = field(default_factory=_new_future)
    opened_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    watcher: asyncio.Task[None] | None = None

    def subscribe(self, track: MediaStreamTrack, mode: Mode = "auto") -> MediaStreamTrack:
        """A consumer's proxy of ``track`` on the room's relay, unbuffered (a slow consumer
        skips frames). Every consumer in the room (drains, senders, recorder) goes here.
        ``mode``: ``ForwardingRelay.subscribe``'s (``"encoded"`` for drains)."""
        return self.relay.subscribe(track, buffered=False, mode=mode)

    def touch(self) -> None:
        """Wake every :class:`RoomTrack` of the room: sources or the talker changed."""
        woken, self.changed = self.changed, _new_future()
        woken.set_result(None)

    def set_source(self, party: Party, kind: str, track: MediaStreamTrack | None) -> None:
        """``party``'s current ``kind`` track (None: gone)."""
        if track is None:
            self.sources.pop((party.key(), kind), None)
        else:
            self.sources[(party.key(), kind)] = track
        self.touch()

    def source(self, party: Party | None, kind: str) -> MediaStreamTrack | None:
        """``party``'s current ``kind`` track (None: no party, or it sends none)."""
        return None if party is None else self.sources.get((party.key(), kind))

    # -- routing (docs/media.md): whose track each peer receives, now

    def to_caller(self) -> Party | None:
        """Whose media the caller receives: the talker's (audio and video)."""
        return self.talker

    def to_listener(self, listener: Party, kind: str) -> Party | None:
        """Whose ``kind`` media ``listener`` receives: the caller's video always (early
        media), the caller's audio only while ``listener`` is the talker."""
        if kind == "video" or self.talker == listener:
            return self.caller
        return None


class RoomTrack(MediaStreamTrack):
    """What the bridge sends on one sender (or records): the ``kind`` track of the party
    ``select()`` names at each moment, relayed through ``Room.subscribe``. Sends nothing
    while ``select()`` is None or that party sends no ``kind`` track; switches sources as
    soon as the room changes (talker set, a party's peer replaced); ends on ``stop``."""

    def __init__(self, room: Room, kind: str, select: Callable[[], Party | None]) -> None:
        super().__init__()
        self.kind = kind
        self._room = room
        self._select = select
        self._source: MediaStreamTrack | None = None
        self._proxy: MediaStreamTrack | None = None
        self._pending: asyncio.Future[Frame | Packet] | None = None
        self._codec: RTCRtpCodecParameters | None = None
        self._out: OutStream | None = None

    def set_output_codec(self, codec: RTCRtpCodecParameters | None) -> None:
        """The codec this track's sender negotiated (``media.forward.EncodedSink``): kept
        for every proxy, so that it forwards encoded frames when the source's codec matches."""
        self._codec = codec
        if isinstance(self._proxy, RelayedTrack):
            self._proxy.set_output_codec(codec)

    def set_output_stream(self, out: OutStream | None) -> None:
        """This track's sender's RTP stream (``media.forward.EncodedSink``): handed to every
        proxy, so forwarded packets keep one continuous sequence and timestamp line on it
        whichever party the room routes here (``media/rtpstream.py``)."""
        self._out = out
        if isinstance(self._proxy, RelayedTrack):
            self._proxy.set_output_stream(out)

    def request_keyframe(self) -> None:
        """The far end lost a picture (PLI/FIR): ask the current source for a keyframe."""
        if isinstance(self._proxy, RelayedTrack):
            self._proxy.request_keyframe()

    async def recv(self) -> Frame | Packet:
        while self.readyState == "live":
            want = self._room.source(self._select(), self.kind)
            if want is not self._source:
                self._release()
                self._source = want
                if want is not None:
                    self._proxy = self._room.subscribe(want)
                    self.set_output_codec(self._codec)
                    self.set_output_stream(self._out)
            if self._proxy is None:
                await asyncio.shield(self._room.changed)
                continue
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._proxy.recv())
            pending = self._pending
            await asyncio.wait((pending, self._room.changed), return_when=asyncio.FIRST_COMPLETED)
            if pending is not self._pending or not pending.done():
                continue  # stopped, or the room changed: select again (a pending frame is kept)
            self._pending = None
            try:
                return pending.result()
            except MediaStreamError:  # that party's track ended: wait for its next one
                gone, party = self._source, self._select()
                self._release()
                if gone is not None and party is not None and self._room.source(party, self.kind) is gone:
                    self._room.set_source(party, self.kind, None)
        raise MediaStreamError

    def _release(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        self._source = None

    def stop(self) -> None:
        super().stop()
        self._release()


class Recording:
    """The talk of a room recorded with aiortc's ``MediaRecorder`` into ``path`` (Matroska:
    AAC audio, H.264 video): the caller's audio and video, and ``talker``'s audio, each
    following that party's current peer (docs/media.md "Recording")."""

    def __init__(self, room: Room, path: Path, talker: Party) -> None:
        self.path = path
        self.tracks = [
            RoomTrack(room, "audio", lambda: room.caller),
            RoomTrack(room, "video", lambda: room.caller),
            RoomTrack(room, "audio", lambda: talker),
        ]
        self.recorder = MediaRecorder(str(path))  # opens (creates) the file
        for track in self.tracks:
            self.recorder.addTrack(track)

    async def start(self) -> None:
        """Start writing (the recorder reads its tracks in tasks of its own)."""
        await self.recorder.start()

    async def stop(self) -> None:
        """Flush and close the file, then release the relayed tracks."""
        try:
            await self.recorder.stop()
        finally:
            for track in self.tracks:
                track.stop()


async def peer_traffic(peer: Peer) -> PartyTraffic:
    """``peer``'s traffic, exact (RTP payload bytes and packets, RFC 3550 section 6.4.1,
    as the party's own ``outbound-rtp``/``inbound-rtp`` stats count them):

    - party -> bridge: counted per RTP packet as it arrives by the receiver taps of
      ``media/forward.py`` (``ReceiverTap.packets``/``octets``: media packets and their
      payload bytes, retransmissions excluded), per kind;
    - bridge -> party: ``outbound-rtp`` ``packetsSent``/``bytesSent`` of ``getStats()``:
      aiortc's sender counters, which count forwarded RTP packets as well
      (``media/rtpstream.py``) as the frames the sender packed itself.

    Sent counts are zeros if the stats are unavailable (a connection torn down under us)."""
    traffic = PartyTraffic(party=peer.party, role=peer.role.value)
    for transceiver in peer.pc.getTransceivers():
        track = transceiver.receiver.track
        tap = tap_of(track) if track is not None else None
        if tap is None:
            continue
        traffic.packets_received += tap.packets
        traffic.bytes_received += tap.octets
        if tap.kind == "audio":
            traffic.audio_bytes_received += tap.octets
        elif tap.kind == "video":
            traffic.video_bytes_received += tap.octets
    try:
        report = await peer.pc.getStats()
    except Exception:
        log.warning("stats of %s unavailable", peer.party.key(), exc_info=True)
        return traffic
    for stats in report.values():
        if stats.type == "outbound-rtp":
            traffic.bytes_sent += stats.bytesSent
            traffic.packets_sent += stats.packetsSent
    return traffic


def add_traffic(a: PartyTraffic, b: PartyTraffic) -> PartyTraffic:
    """``a`` + ``b`` field by field (same party; ``b``'s role wins)."""
    return PartyTraffic(
        party=a.party,
        role=b.role,
        bytes_received=a.bytes_received + b.bytes_received,
        bytes_sent=a.bytes_sent + b.bytes_sent,
        packets_received=a.packets_received + b.packets_received,
        packets_sent=a.packets_sent + b.packets_sent,
        audio_bytes_received=a.audio_bytes_received + b.audio_bytes_received,
        video_bytes_received=a.video_bytes_received + b.video_bytes_received,
    )


def parse_offer(sdp: str) -> RTCSessionDescription:
    """``sdp`` as an offer; raises :class:`InvalidSdp` unless it has at least one audio or
    video section with ICE credentials and a DTLS fingerprint (RFC 8829 section 5.8)."""
    try:
        desc = SessionDescription.parse(sdp)
    except Exception as e:  # aiortc's parser raises whatever the text provokes
        raise InvalidSdp(f"unparsable SDP: {e}") from e
    media = [m for m in desc.media if m.kind in ("audio", "video")]
    if not media:
        raise InvalidSdp("no audio or video m= section")
    for m in media:
        if m.ice is None or not (m.ice.usernameFragment and m.ice.password):
            raise InvalidSdp(f"{m.kind} section without ice-ufrag/ice-pwd")
        if not m.dtls or not m.dtls.fingerprints:
            raise InvalidSdp(f"{m.kind} section without a DTLS fingerprint")
    return RTCSessionDescription(sdp=sdp, type="offer")


class Bridge:
    """All rooms of one bridge process.

    ``network``: address policy (``MediaNetwork.install`` must have run in this process);
    ``reporter``: where media facts go; ``connect_timeout_s``: time from offer to
    ``connected``; ``disconnect_grace_s``: time a joined peer that sent media may send none;
    ``recordings_dir``: where recordings go (created when the first one starts), and the
    visitor snapshots (``snapshots/<call_id>.jpg``, ``media/snapshot.py``: the first picture
    of the caller's video in each room, the one place the bridge decodes video).
    aiortc has no ``disconnected`` state and notices a vanished peer only when ICE consent
    fails (RFC 7675: 6 x 5 s in aioice), so silence is the bridge's early sign of loss.
    """

    def __init__(
        self,
        network: MediaNetwork,
        reporter: Reporter,
        connect_timeout_s: float = 10.0,
        disconnect_grace_s: float = 5.0,
        recordings_dir: Path = Path(".data/recordings"),
    ) -> None:
        self.network = network
        self.reporter = reporter
        self.connect_timeout_s = connect_timeout_s
        self.disconnect_grace_s = disconnect_grace_s
        self.recordings_dir = recordings_dir
        self.snapshots = SnapshotStore(recordings_dir / "snapshots")  # the visitor's picture per call
        self.rooms: dict[str, Room] = {}
        self.closed: OrderedDict[str, RoomStats] = OrderedDict()  # final stats, newest last
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ control

    async def offer(self, call_id: str, req: PeerOffer) -> SdpAnswer:
        """Answer ``req.party``'s offer in room ``call_id`` (created if new). The peer gets a
        :class:`RoomTrack` for each audio/video section of the offer, routed as the module
        docstring says. A second offer of the same party replaces its peer (a reconnect;
        the old one is closed without a report, its traffic kept).

        Raises :class:`InvalidSdp` (garbage, or aiortc refuses it; no peer is kept)."""
        desc = parse_offer(self.network.filter_remote(req.sdp))
        room = self._room(call_id)
        key = req.party.key()
        if req.role == Role.CALLER:
            room.caller = req.party
        old = room.peers.pop(key, None)
        if old is not None:
            await self._close_peer(room, old)
        pc = enable_forwarding(RTCPeerConnection(self.network.rtc_configuration()))
        peer = Peer(req.party, req.role, pc)
        room.peers[key] = peer
        self._handle(room, peer)
        try:
            await pc.setRemoteDescription(desc)
            for transceiver in pc.getTransceivers():
                pc.addTrack(self._sender_track(room, peer, transceiver.kind))
            await pc.setLocalDescription(await pc.createAnswer())  # gathers completely
        except Exception as e:
            if room.peers.get(key) is peer:
                del room.peers[key]
            await self._close_peer(room, peer)
            raise InvalidSdp(f"offer refused: {e}") from e
        self._end_later(
            room, peer, self.connect_timeout_s, f"no media connection in {self.connect_timeout_s:g} s"
        )
        return SdpAnswer(sdp=self.network.announce(pc.localDescription.sdp))

    async def set_talker(self, call_id: str, upd: TalkerUpdate) -> RoomInfo:
        """Make ``upd.party`` the talker of room ``call_id`` (created if no offer came yet);
        routes follow at once. With ``upd.record`` (and a talker), record the talk into
        ``recordings_dir/<call_id>.mkv`` (a later talker's recording: ``<call_id>.<n>.mkv``);
        a talker change or ``record=False`` stops the recording in progress. Idempotent.
        Raises ``OSError`` when the recording file cannot be created (the talker is set)."""
        room = self._room(call_id)
        if upd.party != room.talker or not upd.record:
            await self._stop_recording(room)
        if upd.party != room.talker:
            log.info("room %s: talker %s", call_id, upd.party.key() if upd.party else None)
            room.talker = upd.party
            room.touch()
        if upd.record and upd.party is not None and room.recording is None:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            n = len(room.recordings) + 1
            path = self.recordings_dir / (f"{call_id}.mkv" if n == 1 else f"{call_id}.{n}.mkv")
            recording = Recording(room, path, upd.party)
            room.recording = recording
            room.recordings.append(str(path))
            try:
                await recording.start()
            except BaseException:
                await self._stop_recording(room)
                raise
        return self._info(room)

    async def stats(self, call_id: str) -> RoomStats | None:
        """Room ``call_id``'s traffic so far (its final stats once closed, while kept);
        None when unknown."""
        room = self.rooms.get(call_id)
        if room is None:
            return self.closed.get(call_id)
        traffic = dict(room.closed_traffic)
        for key, peer in list(room.peers.items()):
            now = await peer_traffic(peer)
            if not peer.accounted:
                traffic[key] = add_traffic(traffic[key], now) if key in traffic else now
        return self._room_stats(room, traffic)

    async def close_room(self, call_id: str) -> RoomStats | None:
        """Close room ``call_id``, its recording and its peers, without reporting; its final
        :class:`RoomStats`. A room closed lately answers its kept final stats again (a
        retried close); None when unknown."""
        room = self.rooms.get(call_id)
        if room is None:
            return self.closed.get(call_id)
        try:
            await self._stop_recording(room)
        finally:
            try:
                for peer in list(room.peers.values()):
                    await self._close_peer(room, peer)
            finally:
                room.peers.clear()
                if self.rooms.get(call_id) is room:
                    del self.rooms[call_id]
                if room.watcher is not None and room.watcher is not asyncio.current_task():
                    room.watcher.cancel()
        final = self.closed[call_id] = self._room_stats(room, room.closed_traffic)
        while len(self.closed) > CLOSED_ROOMS_KEPT:
            self.closed.popitem(last=False)
        return final

    async def close(self) -> None:
        """Close every room (bridge shutdown) and wait for the bridge's own tasks."""
        try:
            for call_id in list(self.rooms):
                await self.close_room(call_id)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def info(self) -> list[RoomInfo]:
        """The live rooms, their talkers and peers."""
        return [self._info(r) for r in self.rooms.values()]

    # ------------------------------------------------------------------ rooms

    def _room(self, call_id: str) -> Room:
        room = self.rooms.get(call_id)
        if room is None:
            room = self.rooms[call_id] = Room(call_id)
            self.closed.pop(call_id, None)
            room.watcher = asyncio.create_task(self._watch(room))
        return room

    @staticmethod
    def _room_stats(room: Room, traffic: dict[str, PartyTraffic]) -> RoomStats:
        return RoomStats(
            call_id=room.call_id,
            parties=list(traffic.values()),
            recording=room.recordings[0] if room.recordings else None,
            recordings=list(room.recordings),
            duration_s=round(asyncio.get_running_loop().time() - room.opened_at, 3),
        )

    @staticmethod
    def _info(room: Room) -> RoomInfo:
        return RoomInfo(
            call_id=room.call_id,
            talker=room.talker,
            recording=str(room.recording.path) if room.recording is not None else None,
            peers=[
                PeerInfo(party=p.party, role=p.role, state=p.pc.connectionState, joined=p.joined)
                for p in room.peers.values()
            ],
        )

    @staticmethod
    def _sender_track(room: Room, peer: Peer, kind: str) -> RoomTrack:
        """What ``peer`` receives on its ``kind`` section (docs/media.md routing)."""
        if peer.role == Role.CALLER:
            return RoomTrack(room, kind, room.to_caller)
        listener = peer.party
        return RoomTrack(room, kind, lambda: room.to_listener(listener, kind))

    async def _stop_recording(self, room: Room) -> None:
        """Stop ``room``'s recording in progress; a recording that got no media has no file
        (the muxer writes nothing before the first packet) and is forgotten."""
        recording, room.recording = room.recording, None
        if recording is None:
            return
        try:
            await recording.stop()
        finally:
            if not recording.path.exists():
                room.recordings.remove(str(recording.path))
            log.info("room %s: recording %s stopped", room.call_id, recording.path)

    async def _watch(self, room: Room) -> None:
        """Close ``room`` once its building call's workflow has ended."""
        await self.reporter.room_ended(room.call_id)
        if self.rooms.get(room.call_id) is room:
            log.info("room %s: building call ended, closing", room.call_id)
            await self.close_room(room.call_id)

    # ------------------------------------------------------------------ peers

    def _handle(self, room: Room, peer: Peer) -> None:
        """Wire ``peer``'s events: consume its tracks, follow its connection state."""
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Consume at once: with nobody relaying yet, frames would pile up in the receiver.
            self._spawn(self._drain(peer, room.subscribe(track, mode="arrivals")))
            room.set_source(peer.party, track.kind, track)
            if peer.role == Role.CALLER and track.kind == "video" and not self.snapshots.exists(room.call_id):
                decoded = room.subscribe(track, mode="decoded")  # decodes only until the first picture
                self._spawn(self._snapshot(room, decoded))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("room %s %s %s: %s", room.call_id, peer.role, peer.party.key(), state)
            if peer.ended:
                return
            if state == "connected":
                peer.cancel_timer()
                if not peer.joined:
                    peer.joined = True
                    self._spawn(self._watch_media(room, peer))
                    await self._report(room, peer, Signal.JOINED, None)
            elif state in ("failed", "closed"):
                await self._end(room, peer, f"peer connection {state}")

    async def _snapshot(self, room: Room, decoded: MediaStreamTrack) -> None:
        """The visitor snapshot of ``room`` from ``decoded`` (``media/snapshot.py``)."""
        await take_snapshot(self.snapshots, room.call_id, decoded)

    @staticmethod
    async def _drain(peer: Peer, proxy: MediaStreamTrack) -> None:
        """Note when one of ``peer``'s tracks last had a packet (an ``arrivals``
        subscription: it takes nothing, so the forwarding path stays free of aiortc's
        jitter buffer), at most every :data:`DRAIN_INTERVAL_S`, until the track ends."""
        try:
            while True:
                peer.last_frame = cast(float, await proxy.recv())
                await asyncio.sleep(DRAIN_INTERVAL_S)
        except MediaStreamError:
            pass
        finally:
            proxy.stop()

    async def _watch_media(self, room: Room, peer: Peer) -> None:
        """``media_lost`` once joined ``peer`` has sent frames and then none for
        ``disconnect_grace_s`` (a peer that never sends, e.g. receive-only, is not judged)."""
        loop = asyncio.get_running_loop()
        while not peer.ended:
            await asyncio.sleep(min(1.0, self.disconnect_grace_s / 2))
            last = peer.last_frame
            if not peer.ended and last is not None and loop.time() - last > self.disconnect_grace_s:
                await self._end(room, peer, f"no media for {self.disconnect_grace_s:g} s")

    def _end_later(self, room: Room, peer: Peer, delay_s: float, error: str) -> None:
        """End ``peer`` with ``error`` after ``delay_s`` seconds unless its timer is cancelled."""
        peer.cancel_timer()
        peer.timer = asyncio.get_running_loop().call_later(
            delay_s, lambda: self._spawn(self._end(room, peer, error))
        )

    async def _end(self, room: Room, peer: Peer, error: str) -> None:
        """``peer`` is gone: close it, then ``media_lost`` if it had joined, else ``join_failed``."""
        if peer.ended:
            return
        try:
            await self._close_peer(room, peer)
        finally:
            if room.peers.get(peer.party.key()) is peer:
                del room.peers[peer.party.key()]
            await self._report(room, peer, Signal.MEDIA_LOST if peer.joined else Signal.JOIN_FAILED, error)

    async def _close_peer(self, room: Room, peer: Peer) -> None:
        """Keep ``peer``'s traffic in the room, then close its connection (not reported:
        ``ended`` is set first)."""
        if peer.ended:
            return
        peer.ended = True
        peer.cancel_timer()
        try:
            final = await peer_traffic(peer)
            key = peer.party.key()
            if not peer.accounted:
                old = room.closed_traffic.get(key)
                room.closed_traffic[key] = final if old is None else add_traffic(old, final)
                peer.accounted = True
            for sender in peer.pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
        finally:
            await peer.pc.close()

    async def _report(self, room: Room, peer: Peer, signal: str, error: str | None) -> None:
        log.info("room %s: %s %s (%s)", room.call_id, signal, peer.party.key(), error or "ok")
        await self.reporter.report(
            room.call_id, signal, JoinInput(room_id=room.call_id, party=peer.party, error=error)
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference until it finishes."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("media bridge task failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""The media bridge: one room per call attempt, one ``RTCPeerConnection`` per party.

A party's offer (complete ICE, no trickle) creates its peer (and the room, lazily,
on the first offer); the bridge answers with its own candidates (only the
configured listen addresses, see ``media/network.py``). Every track a party sends
is consumed at once (a drain on a ``MediaRelay`` proxy that also notes when the
party's last frame arrived, so frames never pile up) and relayed to the other party
through ``MediaRelay.subscribe(track, buffered=False)`` (a slow consumer drops frames
instead of queueing them). Audio is Opus end to end: both legs negotiate aiortc's
codecs, Opus first.

Connection states drive the call (troubleshooting guide sections 2-6, issue 3):

- a peer reaching ``connected`` -> ``joined`` (once per peer);
- a peer that never connects within ``connect_timeout_s`` of its offer, or fails or
  closes before connecting -> ``join_failed`` (joinFailCaller / joinFailListener);
- a peer that had connected and then fails, closes, or sends no frame for
  ``disconnect_grace_s`` after having sent some -> ``media_lost`` (abortVoip: "unexpected
  exit, network
  interruptions", guide sections 3(1) and 6(1)).

Each goes to the :class:`Reporter` (Temporal signals to the EscalationWorkflow
``call_id``, ``media/signals.py``). A room closes when the reporter says its
workflow ended, on :meth:`Bridge.close_room`, or at :meth:`Bridge.close`; peers the
bridge closes itself are not reported. Every peer connection is closed in
``finally`` paths. Durations are seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av.frame import Frame
from av.packet import Packet

from media.models import PeerInfo, PeerOffer, Role, RoomInfo, SdpAnswer
from media.network import MediaNetwork
from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party
from workflows.call import SIGNAL_JOIN_FAILED, SIGNAL_JOINED, SIGNAL_MEDIA_LOST

log = logging.getLogger(__name__)


class InvalidSdp(ValueError):
    """The offer is not a usable SDP offer (API: 422 ``invalid-sdp``)."""


class RoomConflict(ValueError):
    """The room belongs to another call (API: 409 ``room-conflict``)."""


class Reporter(Protocol):
    """Where the bridge reports media facts, and how it learns that a room is over."""

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        """Deliver ``signal`` (``joined``/``join_failed``/``media_lost``) for ``call_id``.
        Must not raise (log instead): media keeps flowing whatever the reporter does."""
        ...

    async def room_ended(self, room_id: str) -> None:
        """Return once room ``room_id``'s workflow has closed (never, if unknown)."""
        ...


@dataclass(eq=False)
class Peer:
    """One party's peer connection in a room."""

    party: Party
    role: Role
    pc: RTCPeerConnection
    joined: bool = False
    ended: bool = False
    timer: asyncio.TimerHandle | None = None  # connect timeout

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(eq=False)
class Room:
    """A call attempt's room: its peers by role and the tracks each role sends."""

    room_id: str
    call_id: str
    relay: MediaRelay = field(default_factory=MediaRelay)
    peers: dict[Role, Peer] = field(default_factory=dict)
    sources: dict[tuple[Role, str], MediaStreamTrack] = field(default_factory=dict)
    last_frame: dict[Role, float] = field(default_factory=dict)  # loop.time() of the last frame
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    def set_source(self, role: Role, kind: str, track: MediaStreamTrack | None) -> None:
        """``role``'s current ``kind`` track (None: gone); wakes every :class:`RoomTrack`."""
        if track is None:
            self.sources.pop((role, kind), None)
        else:
            self.sources[(role, kind)] = track
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()

    async def source(self, role: Role, kind: str) -> MediaStreamTrack:
        """``role``'s ``kind`` track, waiting until that party sends one."""
        while (track := self.sources.get((role, kind))) is None:
            await self.changed.wait()
        return track


class RoomTrack(MediaStreamTrack):
    """What the bridge sends to one party: the other party's ``kind`` track, relayed
    (``buffered=False``). Waits while the other party has not joined yet and follows a
    re-joined one; ends when the room closes (``stop``)."""

    def __init__(self, room: Room, source_role: Role, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._room = room
        self._from = source_role
        self._proxy: MediaStreamTrack | None = None
        self._source: MediaStreamTrack | None = None

    async def recv(self) -> Frame | Packet:
        while self.readyState == "live":
            if self._proxy is None:
                self._source = await self._room.source(self._from, self.kind)
                self._proxy = self._room.relay.subscribe(self._source, buffered=False)
            try:
                return await self._proxy.recv()
            except MediaStreamError:  # that party's track ended: wait for its next one
                self._proxy.stop()
                self._proxy = None
                if self._room.sources.get((self._from, self.kind)) is self._source:
                    self._room.set_source(self._from, self.kind, None)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None


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
    ``connected``; ``disconnect_grace_s``: time a joined peer that sent media may send none.
    aiortc has no ``disconnected`` state and notices a vanished peer only when ICE consent
    fails (RFC 7675: 6 x 5 s in aioice), so silence is the bridge's early sign of loss.
    """

    def __init__(
        self,
        network: MediaNetwork,
        reporter: Reporter,
        connect_timeout_s: float = 10.0,
        disconnect_grace_s: float = 5.0,
    ) -> None:
        self.network = network
        self.reporter = reporter
        self.connect_timeout_s = connect_timeout_s
        self.disconnect_grace_s = disconnect_grace_s
        self.rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ control

    async def offer(self, room_id: str, req: PeerOffer) -> SdpAnswer:
        """Answer ``req.party``'s offer in room ``room_id`` (created by its first offer).
        A second offer of the same role replaces that role's peer (a reconnect).

        Raises :class:`InvalidSdp` (garbage, or aiortc refuses it; nothing is kept) and
        :class:`RoomConflict` (``room_id`` is live for another ``call_id``)."""
        desc = parse_offer(self.network.filter_remote(req.sdp))
        room = self.rooms.get(room_id)
        if room is not None and room.call_id != req.call_id:
            raise RoomConflict(f"room {room_id!r} belongs to call {room.call_id!r}")
        if room is None:
            room = self.rooms[room_id] = Room(room_id, req.call_id)
            room.watcher = asyncio.create_task(self._watch(room))
        room.last_frame.pop(req.role, None)  # judge the new peer by its own frames
        old = room.peers.pop(req.role, None)
        if old is not None:
            await self._close_peer(room, old)
        pc = RTCPeerConnection(self.network.rtc_configuration())
        peer = Peer(req.party, req.role, pc)
        room.peers[req.role] = peer
        self._handle(room, peer)
        try:
            await pc.setRemoteDescription(desc)
            for transceiver in pc.getTransceivers():
                pc.addTrack(RoomTrack(room, req.role.other(), transceiver.kind))
            await pc.setLocalDescription(await pc.createAnswer())  # gathers completely
        except Exception as e:
            await self._close_peer(room, peer)
            if not room.peers:
                await self.close_room(room_id)
            raise InvalidSdp(f"offer refused: {e}") from e
        self._end_later(
            room, peer, self.connect_timeout_s, f"no media connection in {self.connect_timeout_s:g} s"
        )
        return SdpAnswer(sdp=self.network.announce(pc.localDescription.sdp))

    async def close_room(self, room_id: str) -> bool:
        """Close room ``room_id`` and its peers without reporting; False if unknown."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return False
        try:
            for peer in list(room.peers.values()):
                await self._close_peer(room, peer)
        finally:
            room.peers.clear()
            if room.watcher is not None and room.watcher is not asyncio.current_task():
                room.watcher.cancel()
        return True

    async def close(self) -> None:
        """Close every room (bridge shutdown) and wait for the bridge's own tasks."""
        try:
            for room_id in list(self.rooms):
                await self.close_room(room_id)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def info(self) -> list[RoomInfo]:
        """The live rooms and their peers."""
        return [
            RoomInfo(
                room_id=r.room_id,
                call_id=r.call_id,
                peers=[
                    PeerInfo(party=p.party, role=p.role, state=p.pc.connectionState, joined=p.joined)
                    for p in r.peers.values()
                ],
            )
            for r in self.rooms.values()
        ]

    # ------------------------------------------------------------------ peers

    def _handle(self, room: Room, peer: Peer) -> None:
        """Wire ``peer``'s events: consume its tracks, follow its connection state."""
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Consume at once: with nobody relaying yet, frames would pile up in the receiver.
            self._spawn(self._drain(room, peer.role, room.relay.subscribe(track, buffered=False)))
            room.set_source(peer.role, track.kind, track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("room %s %s %s: %s", room.room_id, peer.role, peer.party.key(), state)
            if peer.ended:
                return
            if state == "connected":
                peer.cancel_timer()
                if not peer.joined:
                    peer.joined = True
                    self._spawn(self._watch_media(room, peer))
                    await self._report(room, peer, SIGNAL_JOINED, None)
            elif state in ("failed", "closed"):
                await self._end(room, peer, f"peer connection {state}")

    async def _drain(self, room: Room, role: Role, proxy: MediaStreamTrack) -> None:
        """Consume ``role``'s track until it ends, noting each frame's arrival."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await proxy.recv()
                room.last_frame[role] = loop.time()
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
            last = room.last_frame.get(peer.role)
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
            if room.peers.get(peer.role) is peer:
                del room.peers[peer.role]
            await self._report(room, peer, SIGNAL_MEDIA_LOST if peer.joined else SIGNAL_JOIN_FAILED, error)

    async def _close_peer(self, room: Room, peer: Peer) -> None:
        """Close ``peer``'s connection (not reported: ``ended`` is set first)."""
        peer.ended = True
        peer.cancel_timer()
        try:
            for sender in peer.pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
        finally:
            await peer.pc.close()

    async def _report(self, room: Room, peer: Peer, signal: str, error: str | None) -> None:
        log.info("room %s: %s %s (%s)", room.room_id, signal, peer.party.key(), error or "ok")
        await self.reporter.report(
            room.call_id, signal, JoinInput(room_id=room.room_id, party=peer.party, error=error)
        )

    async def _watch(self, room: Room) -> None:
        """Close ``room`` once its workflow has ended."""
        await self.reporter.room_ended(room.room_id)
        if self.rooms.get(room.room_id) is room:
            log.info("room %s: workflow ended, closing", room.room_id)
            await self.close_room(room.room_id)

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

"""Benchmark: media relay CPU per two-way call, calls held on one core, answer -> first
audible frame; aiortc's stock ``MediaRelay`` (decode + re-encode) vs ``media.forward``
(RTP packet forwarding, issue 13 item 1), in one run.

Processes: the bridge runs alone in a child process (``--serve-bridge``), pinned to one
core (``--bridge-cpu``, default 0; this process then runs on the others), so its CPU
(``/proc/<pid>/stat``, user + system) is the relay's alone and "one core" is literal. The
bridge is a two-party bridge per call (door, resident), wired as ``media/bridge.py`` is:
every received track is drained (forward: an ``arrivals`` subscription read every
``DRAIN_INTERVAL_S``) and relayed to the other party through a late-binding wrapper
(``FollowTrack``, the ``RoomTrack`` contract of ``media/forward.py``: codec, output
stream, keyframe requests); ``--relay stock`` uses ``MediaRelay`` and plain peers,
``--relay forward`` ``ForwardingRelay`` and ``enable_forwarding`` on every bridge peer. All
traffic is on 127.0.0.1 (no STUN).

The parties are real aiortc peers (ICE, DTLS, SRTP, RTCP). To drive 100+ calls from one
process beside the bridge on a 2-core machine, they send pre-packetized RTP on one clock
per kind (:class:`Ticker`, through each sender's ``media.rtpstream.OutStream``: a 1 s loop
of 20 ms Opus packets of a 440/880 Hz tone; a 2 s loop of VP8 frames of
:class:`PatternTrack`, 640x480 at 15 fps, 500 kbit/s, restarting at its keyframe on RTCP
PLI) and record what reaches their receivers (:class:`Party`: per frame its arrival time
and RTP timestamp, nothing decoded). The latency step uses decoding parties instead
(``media.peer.ToneTrack``, the first decoded frame whose peak is a tone).

Figures, per relay and step of N concurrent two-way calls, over ``--duration`` s after a
2 s warm-up: bridge CPU (% of one core) total and per call, and per call scaled to the
full frame rate (divided by the mean delivered share, capped at 1) with the calls per
core that implies; frames delivered / expected (50/s audio, 15/s video, per direction);
late share (a frame is late when its arrival minus its timestamp exceeds the stream's
least such delay in the window by more than :data:`LATE_S`) and the 99th percentile of
that excess ("jitter"); the parties' own CPU; the time the bridge and the parties waited
on a run queue (other processes on their core: when large, on-time figures measure the
machine). A step holds its calls with late share <= :data:`MAX_LATE` and delivery >=
:data:`MIN_DELIVERED`. Latency: answer (the resident's offer) -> its connection, its first
RTP packet, the first RTP packet at the door, the first audible frame at the door.

Issue 13's targets: >= 100 two-way Opus calls and >= 50 two-way audio + 640x480@15 VP8
calls held on one core; answer -> first audible frame p99 < 150 ms. Figures only, no
assertions; the machine is shared, so the load average is printed beside them.

``python -m bench.media_relay [--quick] [--relays stock,forward] [--duration S]
[--audio-calls stock=1,2,4;forward=25,50,100] [--video-calls ...] [--latency-calls N]
[--bridge-cpu N|none]``
``python -m bench.media_relay --serve-bridge PORT --relay stock|forward [--pin CPU]`` (internal)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import os
import sys
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket, is_rtcp
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from bench.common import cpu_s, emit, info, machine, parser, pct, summary_ms, table
from media.bridge import DRAIN_INTERVAL_S
from media.forward import ForwardingRelay, enable_forwarding
from media.network import MediaNetwork
from media.peer import AUDIO_PREFETCH, SAMPLE_RATE, ClientPeer, ToneTrack
from media.rtpstream import OutStream

VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FPS = 640, 480, 15
"""The generated video: pixels, frames per second."""

VIDEO_CLOCK = 90000
"""RTP clock rate of video, Hz (RFC 7741 section 4.1 for VP8)."""

PATTERN_PERIOD = 30
"""Frames after which :func:`pattern_frame` repeats (2 s at 15 fps)."""

DARK, BRIGHT, BAR = 40, 200, 235
"""Luma of the pattern's left half, right half, and moving bar (top band only)."""

BAR_ROWS = 96
"""Rows of the top band where the bar moves; rows below are static halves."""

AUDIO_FPS = 50
"""Audio frames per second and direction at 20 ms ptime."""

LATE_S = 0.06
"""A frame is late when it arrives this much later than the stream's best-case delay (s):
three audio frames, about what a receiver's jitter buffer absorbs."""

MIN_DELIVERED = 0.995
"""Share of the expected frames a step must deliver to count as holding its calls."""

MAX_BRIDGE_CPU_PCT = 80.0
"""Largest CPU share of one core a media process may use in a step of ``bench.media_scale``
that counts as holding its calls (headroom for bursts)."""

MAX_LATE = 0.01
"""Largest late share a step may have to count as holding its calls (issue 13: "< 1 %
late, no loss"; the bridge is pinned to one core, so it cannot take more than that)."""


# ---------------------------------------------------------------- media sources


def pattern_frame(index: int) -> VideoFrame:
    """Frame ``index`` of the test pattern: 640x480 yuv420p, left half luma :data:`DARK`,
    right half :data:`BRIGHT`, a 32-pixel bar of luma :data:`BAR` in the top
    :data:`BAR_ROWS` rows moving right by width/:data:`PATTERN_PERIOD` per frame;
    chroma neutral (128). ``pts``/``time_base`` are left to the caller."""
    half = VIDEO_WIDTH // 2
    row = bytearray([DARK]) * half + bytearray([BRIGHT]) * half
    bar_row = bytearray(row)
    x = (index % PATTERN_PERIOD) * VIDEO_WIDTH // PATTERN_PERIOD
    bar_row[x : x + 32] = bytes([BAR]) * len(bar_row[x : x + 32])
    frame = VideoFrame(VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p")
    frame.planes[0].update(bytes(bar_row) * BAR_ROWS + bytes(row) * (VIDEO_HEIGHT - BAR_ROWS))
    chroma = bytes([128]) * (VIDEO_WIDTH // 2 * VIDEO_HEIGHT // 2)
    frame.planes[1].update(chroma)
    frame.planes[2].update(chroma)
    return frame


def luma_at(frame: VideoFrame, x: int, y: int) -> int:
    """Luma (0-255) of pixel (``x``, ``y``) of a yuv420p ``frame``."""
    plane = frame.planes[0]
    return bytes(plane)[y * plane.line_size + x]


class PatternTrack(MediaStreamTrack):
    """A live video track of :func:`pattern_frame` frames, 640x480 at 15 fps, ``pts`` in
    1/90000 s (aiortc encodes them with its VP8 or H.264 encoder)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._n += 1
            await asyncio.sleep(self._start + self._n / VIDEO_FPS - time.monotonic())
        frame = pattern_frame(self._n)
        frame.pts = self._n * VIDEO_CLOCK // VIDEO_FPS
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


def encode_video_loop() -> list[bytes]:
    """VP8 frames of one pattern period plus one (:data:`PATTERN_PERIOD` + 1): a keyframe,
    then deltas; the last equals frame 0's picture, so the loop goes on at index 1.
    Encoder settings as aiortc's ``Vp8Encoder`` (realtime, 500 kbit/s)."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = VIDEO_WIDTH, VIDEO_HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = 500_000
    codec.time_base = fractions.Fraction(1, VIDEO_FPS)
    codec.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    out: list[bytes] = []
    for i in range(PATTERN_PERIOD + 1):
        frame = pattern_frame(i)
        frame.pts = i
        frame.time_base = codec.time_base
        out.append(b"".join(bytes(p) for p in codec.encode(frame)))
    return out


def encode_tone_loop(frequency_hz: float, amplitude: float = 0.5) -> list[bytes]:
    """One second of a continuous sine (mono s16, 48 kHz) as 50 Opus packets of 20 ms, by
    aiortc's ``OpusEncoder``; 50 periods of a whole number of Hz fit exactly, so the loop
    has no click."""
    encoder = OpusEncoder()
    n = SAMPLE_RATE // AUDIO_FPS
    out: list[bytes] = []
    i = 0
    while len(out) < AUDIO_FPS:
        samples = array(
            "h",
            (
                int(amplitude * 32767 * math.sin(2 * math.pi * frequency_hz * (i * n + k) / SAMPLE_RATE))
                for k in range(n)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = i * n
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        payloads, _ = encoder.encode(frame)
        out.extend(payloads)
        i += 1
    return out[:AUDIO_FPS]


# ---------------------------------------------------------------- the bridge process


class FollowTrack(MediaStreamTrack):
    """What the bridge sends to one party: the other party's ``kind`` track through the
    relay, subscribed once that party sent one (the ``RoomTrack`` contract of
    ``media/forward.py``: passes ``set_output_codec`` and ``request_keyframe`` on)."""

    def __init__(self, room: BenchRoom, source_role: str, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._room, self._from = room, source_role
        self._proxy: MediaStreamTrack | None = None
        self._codec: Any = None
        self._out: Any = None

    def set_output_codec(self, codec: Any) -> None:
        self._codec = codec
        if self._proxy is not None and hasattr(self._proxy, "set_output_codec"):
            self._proxy.set_output_codec(codec)

    def set_output_stream(self, out: Any) -> None:
        self._out = out
        if self._proxy is not None and hasattr(self._proxy, "set_output_stream"):
            self._proxy.set_output_stream(out)

    def request_keyframe(self) -> None:
        if self._proxy is not None and hasattr(self._proxy, "request_keyframe"):
            self._proxy.request_keyframe()

    async def recv(self) -> Frame | Packet:
        if self._proxy is None:
            source = await self._room.source(self._from, self.kind)
            self._proxy = self._room.subscribe(source)
            self.set_output_codec(self._codec)
            self.set_output_stream(self._out)
        return await self._proxy.recv()

    def stop(self) -> None:
        super().stop()
        if self._proxy is not None:
            self._proxy.stop()


@dataclass(eq=False)
class BenchRoom:
    """One call in the bench bridge: a peer per role, the tracks each role sends."""

    relay: MediaRelay | ForwardingRelay
    pcs: dict[str, RTCPeerConnection] = field(default_factory=dict)
    sources: dict[tuple[str, str], MediaStreamTrack] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_frame: dict[str, float] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def subscribe(self, track: MediaStreamTrack, drain: bool = False) -> MediaStreamTrack:
        if isinstance(self.relay, ForwardingRelay):
            return self.relay.subscribe(track, buffered=False, mode="arrivals" if drain else "auto")
        return self.relay.subscribe(track, buffered=False)

    async def source(self, role: str, kind: str) -> MediaStreamTrack:
        while (track := self.sources.get((role, kind))) is None:
            await self.changed.wait()
        return track

    async def drain(self, role: str, proxy: MediaStreamTrack) -> None:
        """Consume ``role``'s track, noting its last arrival (``media/bridge.py``'s _drain:
        forwarding, an ``arrivals`` subscription read every ``DRAIN_INTERVAL_S``; stock,
        every decoded frame)."""
        loop = asyncio.get_running_loop()
        forwarding = isinstance(self.relay, ForwardingRelay)
        with contextlib.suppress(MediaStreamError):
            while True:
                await proxy.recv()
                self.last_frame[role] = loop.time()
                if forwarding:
                    await asyncio.sleep(DRAIN_INTERVAL_S)

    async def offer(self, role: str, sdp: str, forward: bool) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if forward:
            enable_forwarding(pc)
        self.pcs[role] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.ensure_future(self.drain(role, self.subscribe(track, drain=True))))
            self.sources[(role, track.kind)] = track
            woken, self.changed = self.changed, asyncio.Event()
            woken.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        other = "resident" if role == "door" else "door"
        for transceiver in pc.getTransceivers():
            pc.addTrack(FollowTrack(self, other, transceiver.kind))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in self.pcs.values():
            for sender in pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            await pc.close()


async def serve_bridge(port: int, relay: str, cpu: int | None) -> None:
    """The bench bridge on 127.0.0.1:``port``: JSON lines, ``{"op": "offer", "call", "role",
    "sdp"}`` -> ``{"sdp"}``, ``{"op": "close", "call"}`` -> ``{}``, ``{"op": "stats"}`` ->
    the forwarding relays' counters summed; until SIGTERM. ``cpu``: run on that core only
    (``os.sched_setaffinity``)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    MediaNetwork().install()
    forward = relay == "forward"
    rooms: dict[str, BenchRoom] = {}
    closed = {
        "packets_in": 0,
        "decoded_frames": 0,
        "keyframe_requests": 0,
        "rtp_in": 0,
        "rtp_forwarded": 0,
        "nacks_relayed": 0,
    }

    def counters() -> dict[str, int]:
        out = dict(closed)
        for room in rooms.values():
            if isinstance(room.relay, ForwardingRelay):
                for key in out:
                    out[key] += getattr(room.relay, key)
        return out

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                req = json.loads(line)
                reply: dict[str, Any] = {}
                if req["op"] == "offer":
                    room = rooms.get(req["call"])
                    if room is None:
                        room = rooms[req["call"]] = BenchRoom(ForwardingRelay() if forward else MediaRelay())
                    reply["sdp"] = await room.offer(req["role"], req["sdp"], forward)
                elif req["op"] == "close":
                    room = rooms.pop(req["call"], None)
                    if room is not None:
                        if isinstance(room.relay, ForwardingRelay):
                            for key in closed:
                                closed[key] += getattr(room.relay, key)
                        await room.close()
                elif req["op"] == "stats":
                    reply = counters()
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class BridgeClient:
    """This process's side of the bench bridge's control connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._lock = asyncio.Lock()

    async def call(self, **req: Any) -> dict[str, Any]:
        async with self._lock:
            self._writer.write((json.dumps(req) + "\n").encode())
            await self._writer.drain()
            reply: dict[str, Any] = json.loads(await self._reader.readline())
            return reply


# ---------------------------------------------------------------- the parties


@dataclass
class Arrivals:
    """Frames that arrived on one received track: ``time.monotonic()`` and RTP-clock pts."""

    kind: str
    clock: int
    times: list[float] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)  # RTP timestamps as received

    def window(self, t0: float, t1: float) -> list[float]:
        """Per frame that arrived in [t0, t1): its delay beyond the stream's least delay in
        that window (arrival minus timestamp, minus the minimum of that), seconds."""
        if not self.pts:
            return []
        base = self.pts[0]
        delays = [
            t - ((p - base) & 0xFFFFFFFF) / self.clock
            for t, p in zip(self.times, self.pts, strict=True)
            if t0 <= t < t1 and p >= 0
        ]
        best = min(delays, default=0.0)
        return [d - best for d in delays]


class PacedTrack(MediaStreamTrack):
    """A party's sending track that never yields frames: once its sender started, its
    ``OutStream`` (``media/rtpstream.py``, through ``enable_forwarding``) joins ``ticker``,
    which sends pre-packetized RTP on it. The same RTP an aiortc sender would make of
    the loop's frames (aiortc's packetizers), without a task, a sleep and a pack per frame
    per party: the parties of 100 calls fit beside the bridge on a 2-core machine.
    :meth:`request_keyframe` (RTCP PLI from the bridge) restarts the loop at its keyframe."""

    def __init__(self, ticker: Ticker) -> None:
        super().__init__()
        self.kind = ticker.kind
        self.ticker = ticker
        self.out: OutStream | None = None
        self.next = 0  # index of the next frame of the loop
        self.seq = 0
        self._ended = asyncio.Event()

    def set_output_codec(self, codec: Any) -> None:
        pass

    def set_output_stream(self, out: OutStream | None) -> None:
        self.out = out
        if out is not None:
            self.ticker.streams.append(self)

    def request_keyframe(self) -> None:
        self.next = 0

    async def recv(self) -> Frame:
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._ended.set()
        if self in self.ticker.streams:
            self.ticker.streams.remove(self)


class Ticker:
    """One clock for every :class:`PacedTrack` of a kind: every ``1/fps`` s, the next frame of
    each stream's loop (``frames``: RTP payloads per frame; after the last, from
    ``loop_from``) as RTP packets, timestamps ``tick x clock_rate/fps``. A tick the event
    loop missed (this process starved) is skipped: its frames count as not delivered."""

    def __init__(
        self, kind: str, frames: list[list[bytes]], fps: int, clock_rate: int, loop_from: int
    ) -> None:
        self.kind = kind
        self.frames, self.fps, self.loop_from = frames, fps, loop_from
        self.step = clock_rate // fps
        self.streams: list[PacedTrack] = []
        self.keyframes_sent = 0
        self.ticks = 0  # ticks sent (skipped ones not)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, tick = time.monotonic(), 0
        while True:
            # the next tick; one that is already past is skipped, not sent in a burst (a
            # stalled party sends less, as a real one would, instead of catching up)
            tick = max(tick + 1, int((time.monotonic() - start) * self.fps) + 1)
            await asyncio.sleep(start + tick / self.fps - time.monotonic())
            self.ticks += 1
            now = loop.time()
            for stream in list(self.streams):
                out = stream.out
                if out is None:
                    continue
                if stream.next >= len(self.frames):
                    stream.next = self.loop_from
                if stream.next == 0:
                    self.keyframes_sent += 1
                payloads = self.frames[stream.next]
                stream.next += 1
                for k, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type=out.payload_type,
                        marker=int(k == len(payloads) - 1),
                        sequence_number=stream.seq,
                        timestamp=(tick * self.step) & 0xFFFFFFFF,
                        payload=payload,
                    )
                    stream.seq = (stream.seq + 1) & 0xFFFF
                    await out.forward(stream, packet, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Party:
    """One party's aiortc peer: sends ``tracks`` (:class:`PacedTrack`), records what arrives
    per received stream at its receivers (RTP packets, decrypted, before aiortc's receive
    path: no jitter buffer, no decoding): per frame (audio packet; video packet with the
    marker bit, a frame's last) its arrival time and RTP timestamp."""

    def __init__(self, tracks: list[MediaStreamTrack], recv_kinds: list[str]) -> None:
        self.pc = enable_forwarding(RTCPeerConnection(RTCConfiguration(iceServers=[])))
        self.tracks = tracks
        for track in tracks:
            self.pc.addTrack(track)
        sent = {t.kind for t in tracks}
        for kind in recv_kinds:
            if kind not in sent:
                self.pc.addTransceiver(kind, direction="recvonly")
        self.arrivals: list[Arrivals] = []

    def listen(self) -> None:
        """Record at every receiver (after the answer: the receivers exist)."""
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            got = Arrivals(kind, SAMPLE_RATE if kind == "audio" else VIDEO_CLOCK)
            self.arrivals.append(got)
            video = kind == "video"

            async def record(
                packet: RtpPacket, arrival_time_ms: int, got: Arrivals = got, video: bool = video
            ) -> None:
                if packet.marker or not video:
                    got.times.append(time.monotonic())
                    got.pts.append(packet.timestamp)

            transceiver.receiver._handle_rtp_packet = record  # type: ignore[method-assign]

    async def close(self) -> None:
        for track in self.tracks:
            track.stop()
        await self.pc.close()


async def connected(pc: RTCPeerConnection, timeout_s: float = 30.0) -> None:
    """Wait until ``pc`` is connected; raises ``ConnectionError`` / ``TimeoutError``."""
    async with asyncio.timeout(timeout_s):
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise ConnectionError(pc.connectionState)
            await asyncio.sleep(0.01)


async def join(bridge: BridgeClient, call_id: str, role: str, peer: RTCPeerConnection | ClientPeer) -> None:
    """Offer ``peer`` (complete ICE) to the bench bridge and apply its answer."""
    if isinstance(peer, ClientPeer):
        reply = await bridge.call(op="offer", call=call_id, role=role, sdp=await peer.offer())
        await peer.accept(reply["sdp"])
        return
    await peer.setLocalDescription(await peer.createOffer())
    reply = await bridge.call(op="offer", call=call_id, role=role, sdp=peer.localDescription.sdp)
    await peer.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))


class Media:
    """The pre-encoded loops, packetized for RTP once per run, and their tickers."""

    def __init__(self, video: bool) -> None:
        self.tones = {440: encode_tone_loop(440), 880: encode_tone_loop(880)}
        self.video = encode_video_loop() if video else []
        vp8 = Vp8Encoder()
        frames = []
        for n, data in enumerate(self.video):
            packet = Packet(data)
            packet.pts, packet.time_base = n * (VIDEO_CLOCK // VIDEO_FPS), fractions.Fraction(1, VIDEO_CLOCK)
            frames.append(vp8.pack(packet)[0])
        self.tickers = {
            440: Ticker("audio", [[p] for p in self.tones[440]], AUDIO_FPS, SAMPLE_RATE, 0),
            880: Ticker("audio", [[p] for p in self.tones[880]], AUDIO_FPS, SAMPLE_RATE, 0),
            "video": Ticker("video", frames, VIDEO_FPS, VIDEO_CLOCK, 1),
        }

    def tracks(self, tone_hz: int, video: bool) -> list[MediaStreamTrack]:
        for ticker in self.tickers.values():
            ticker.start()
        tracks: list[MediaStreamTrack] = [PacedTrack(self.tickers[tone_hz])]
        if video:
            tracks.append(PacedTrack(self.tickers["video"]))
        return tracks

    async def stop(self) -> None:
        for ticker in self.tickers.values():
            await ticker.stop()


class Call:
    """One two-way call through the bench bridge: door and resident, audio (+ video)."""

    def __init__(self, bridge: BridgeClient, media: Media, video: bool) -> None:
        self.bridge = bridge
        self.call_id = f"bench-{uuid.uuid4().hex[:8]}"
        kinds = ["audio", "video"] if video else ["audio"]
        self.door = Party(media.tracks(440, video), kinds)
        self.resident = Party(media.tracks(880, video), kinds)

    async def start(self) -> None:
        await join(self.bridge, self.call_id, "door", self.door.pc)
        self.door.listen()
        await connected(self.door.pc)
        await join(self.bridge, self.call_id, "resident", self.resident.pc)
        self.resident.listen()
        await connected(self.resident.pc)

    def streams(self) -> list[Arrivals]:
        return self.door.arrivals + self.resident.arrivals

    async def close(self) -> None:
        await self.door.close()
        await self.resident.close()
        await self.bridge.call(op="close", call=self.call_id)


async def step(
    bridge: BridgeClient, media: Media, bridge_pid: int, n: int, video: bool, duration_s: float
) -> dict[str, Any]:
    """``n`` concurrent two-way calls for ``duration_s`` s after a 2 s warm-up; one row."""
    calls = [Call(bridge, media, video) for _ in range(n)]
    try:
        for i in range(0, n, 10):  # ten set-ups at a time: DTLS handshakes are CPU-heavy
            await asyncio.gather(*(c.start() for c in calls[i : i + 10]))
        await asyncio.sleep(2.0)
        stats0 = await bridge.call(op="stats")
        cpu0, own0, t0 = cpu_s(bridge_pid), time.process_time(), time.monotonic()
        wait0, own_wait0 = run_queue_wait_s(bridge_pid), run_queue_wait_s(os.getpid())
        await asyncio.sleep(duration_s)
        cpu1, own1, t1 = cpu_s(bridge_pid), time.process_time(), time.monotonic()
        wait1, own_wait1 = run_queue_wait_s(bridge_pid), run_queue_wait_s(os.getpid())
        stats1 = await bridge.call(op="stats")
        elapsed = t1 - t0
        row: dict[str, Any] = {"calls": n, "video": video}
        cpu_pct = 100 * (cpu1 - cpu0) / elapsed
        row["bridge_cpu_pct"] = cpu_pct
        row["cpu_pct_per_call"] = cpu_pct / n
        for kind, fps in (("audio", AUDIO_FPS), ("video", VIDEO_FPS)):
            streams = [s for c in calls for s in c.streams() if s.kind == kind]
            if kind == "video" and not video:
                continue
            expected = 2 * n * fps * elapsed
            extra = [d for s in streams for d in s.window(t0, t1)]
            row[f"{kind}_delivered"] = len(extra) / expected
            row[f"{kind}_late"] = sum(1 for d in extra if d > LATE_S) / len(extra) if extra else math.nan
            row[f"{kind}_jitter_p99_ms"] = pct(extra, 99) * 1000
        row["parties_cpu_pct"] = 100 * (own1 - own0) / elapsed
        # time runnable but not running (other processes on the core): when large, lateness
        # measures the machine, not the bridge
        row["bridge_waited_pct"] = 100 * (wait1 - wait0) / elapsed
        row["parties_waited_pct"] = 100 * (own_wait1 - own_wait0) / elapsed
        # A starved bridge relays fewer frames and so spends less: scale to the full rate.
        shares = [row[f"{k}_delivered"] for k in ("audio", "video") if f"{k}_delivered" in row]
        share = min(1.0, sum(shares) / len(shares))
        row["cpu_pct_per_call_full_rate"] = cpu_pct / n / share if share > 0 else math.nan
        row["calls_per_core_est"] = 100 / row["cpu_pct_per_call_full_rate"] if cpu_pct > 0 else math.nan
        row["decoded_frames"] = stats1.get("decoded_frames", 0) - stats0.get("decoded_frames", 0)
        row["keyframe_requests"] = stats1.get("keyframe_requests", 0)
        row["rtp_forwarded"] = stats1.get("rtp_forwarded", 0) - stats0.get("rtp_forwarded", 0)
        late = max(row["audio_late"], row.get("video_late", 0.0))
        delivered_min = min(row["audio_delivered"], row.get("video_delivered", 1.0))
        row["holds"] = delivered_min >= MIN_DELIVERED and late <= MAX_LATE
        return row
    finally:
        for c in calls:
            with contextlib.suppress(Exception):
                await c.close()


LATENCY_SETTLE_S = 5.0
"""Seconds between the last load step and the latency calls: a step past the bridge's
capacity leaves it closing 150+ peers for a few seconds, which a latency call would wait on."""

LATENCY_MARKS = ("resident_connected", "first_packet_at_bridge", "first_packet_at_door", "first_loud_frame")
"""Where answer -> first audible frame goes, in order (:func:`latency_call`)."""


async def latency_call(bridge: BridgeClient, door_prefetch: int | None = AUDIO_PREFETCH) -> dict[str, float]:
    """One call with the reference clients' peers (``media.peer.ClientPeer`` with a
    ``ToneTrack``, Opus, as ``ringflow/agent.py`` joins): the door joins and connects; the
    resident answers (offers). Returns seconds from the answer (the resident's offer) to each
    of :data:`LATENCY_MARKS`: its peer connection ``connected`` (ICE + DTLS), its first RTP
    packet sent (its sender started: the bridge gets it within a millisecond on loopback),
    the first RTP packet at the door, the first loud decoded frame at the door
    (``ClientPeer.wait_loud``: after the door's own jitter buffer and Opus decoder).
    ``door_prefetch``: the door's ``ClientPeer(audio_prefetch=...)``, the agent's
    ``MediaSpec.audio_prefetch`` (default ``media.peer.AUDIO_PREFETCH``; None: aiortc's 4).
    The first-packet marks wrap the door's receiver and the resident's transport (timing only)."""
    call_id = f"lat-{uuid.uuid4().hex[:8]}"
    door = ClientPeer([ToneTrack(440)], audio_prefetch=door_prefetch)
    resident = ClientPeer([ToneTrack(880)], audio_prefetch=door_prefetch)
    marks: dict[str, float] = {}

    def first(pc: RTCPeerConnection, mark: str, sending: bool) -> None:
        """Note ``mark`` at the first RTP packet ``pc`` sends or receives on audio."""
        [transceiver] = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if sending:
            transport = transceiver.sender.transport
            send = transport._send_rtp

            async def sent(data: bytes) -> None:
                if not is_rtcp(data):
                    marks.setdefault(mark, time.monotonic())
                await send(data)

            transport._send_rtp = sent  # type: ignore[method-assign]
        else:
            receiver = transceiver.receiver
            handle = receiver._handle_rtp_packet

            async def got(packet: RtpPacket, arrival_time_ms: int) -> None:
                marks.setdefault(mark, time.monotonic())
                await handle(packet, arrival_time_ms)

            receiver._handle_rtp_packet = got  # type: ignore[method-assign]

    try:
        await join(bridge, call_id, "door", door)
        first(door.pc, "first_packet_at_door", sending=False)
        async with asyncio.timeout(30):
            await door.connected()
        answered = time.monotonic()
        await join(bridge, call_id, "resident", resident)
        first(resident.pc, "first_packet_at_bridge", sending=True)
        async with asyncio.timeout(30):
            await resident.connected()
        marks["resident_connected"] = time.monotonic()
        async with asyncio.timeout(10):
            marks["first_loud_frame"] = await door.wait_loud(answered)
        return {k: marks[k] - answered for k in LATENCY_MARKS if k in marks}
    finally:
        await door.close()
        await resident.close()
        await bridge.call(op="close", call=call_id)


# ---------------------------------------------------------------- driver


@contextlib.asynccontextmanager
async def bridge_process(relay: str, cpu: int | None) -> Any:
    """Start the bench bridge (``relay``) in a child process, pinned to core ``cpu`` if
    given; yields (client, pid)."""
    from ringflow.stack.ports import free_port

    port = free_port()
    pin = ["--pin", str(cpu)] if cpu is not None else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.media_relay", "--serve-bridge", str(port), "--relay", relay, *pin
    )
    writer: asyncio.StreamWriter | None = None
    try:
        for _ in range(300):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("bench bridge did not start")
        yield BridgeClient(reader, writer), proc.pid
    finally:
        if writer is not None:
            writer.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


def run_queue_wait_s(pid: int) -> float:
    """Seconds process ``pid``'s main thread has waited on a run queue, runnable but not
    running (``/proc/<pid>/schedstat``, second field, ns): CPU taken by other processes."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _steps(spec: str) -> dict[str, list[int]]:
    """``"stock=1,2;forward=10,25"`` -> ``{"stock": [1, 2], "forward": [10, 25]}``."""
    out: dict[str, list[int]] = {}
    for part in filter(None, spec.split(";")):
        name, _, counts = part.partition("=")
        out[name.strip()] = [int(x) for x in counts.split(",") if x]
    return out


async def run(
    relays: list[str],
    audio_steps: dict[str, list[int]],
    video_steps: dict[str, list[int]],
    latency_calls: int,
    duration_s: float,
    cpu: int | None,
    door_prefetch: int | None = AUDIO_PREFETCH,
) -> dict[str, Any]:
    """Every relay: audio steps, then video steps (each kind stopping after a step that
    delivered under half the frames: larger ones only take longer), then latency calls; each
    relay in a fresh bridge process pinned to core ``cpu`` (this process then runs on the
    other cores)."""
    MediaNetwork().install()
    if cpu is not None and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {cpu})
    media = Media(video=any(video_steps.get(r) for r in relays))
    result: dict[str, Any] = {
        "machine": machine(),
        "duration_s": duration_s,
        "bridge_cpu": cpu,
        "door_prefetch": door_prefetch,
        "relays": {},
    }
    try:
        for relay in relays:
            out: dict[str, Any] = {"audio": [], "video": [], "latency": {}}
            async with bridge_process(relay, cpu) as (bridge, pid):
                for kind, steps in (("audio", audio_steps), ("video", video_steps)):
                    for n in steps.get(relay, []):
                        info(f"media_relay {relay}: {n} two-way {kind} call(s) for {duration_s:g} s")
                        row = await step(bridge, media, pid, n, kind == "video", duration_s)
                        out[kind].append(row)
                        info(f"  -> {json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)})}")
                        await asyncio.sleep(1.0)
                        if row[f"{kind}_delivered"] < 0.5:
                            break  # far past the capacity: larger steps only take longer
                if latency_calls and (out["audio"] or out["video"]):
                    await asyncio.sleep(LATENCY_SETTLE_S)  # the last step's peers are closing
                samples: dict[str, list[float]] = {k: [] for k in LATENCY_MARKS}
                for i in range(latency_calls):
                    info(f"media_relay {relay}: latency call {i + 1}/{latency_calls}")
                    for k, v in (await latency_call(bridge, door_prefetch)).items():
                        samples[k].append(v)
                out["latency"] = {k: summary_ms(v) for k, v in samples.items() if v}
            for kind in ("audio", "video"):
                holding = [r["calls"] for r in out[kind] if r["holds"]]
                out[f"{kind}_calls_held"] = max(holding) if holding else 0
            result["relays"][relay] = out
    finally:
        await media.stop()
    return result


def _row(relay: str, r: dict[str, Any], keys: Callable[[str], bool]) -> dict[str, Any]:
    return {"relay": relay} | {k: v for k, v in r.items() if keys(k)}


def main() -> None:
    p = parser("media relay CPU per two-way call, capacity and answer -> first audio: stock vs forwarding")
    p.add_argument("--relays", default="stock,forward", help="comma-separated: stock, forward")
    p.add_argument("--audio-calls", help="steps per relay, e.g. 'stock=1,2,4;forward=10,25,50'")
    p.add_argument("--video-calls", help="steps per relay, e.g. 'stock=1,2;forward=2,5'")
    p.add_argument("--latency-calls", type=int, help="sequential calls timed answer -> first audio")
    p.add_argument("--duration", type=float, help="measured seconds per step (default 10; quick 4)")
    p.add_argument(
        "--bridge-cpu",
        default="0",
        help="core the bridge process is pinned to (the parties run on the others); 'none': not pinned",
    )
    p.add_argument(
        "--door-prefetch",
        default=str(AUDIO_PREFETCH),
        help="latency calls: the parties' ClientPeer audio_prefetch (default: the agent's, "
        f"{AUDIO_PREFETCH}; 'aiortc': aiortc's own 4)",
    )
    p.add_argument("--serve-bridge", type=int, help=argparse.SUPPRESS)
    p.add_argument("--relay", default="stock", help=argparse.SUPPRESS)
    p.add_argument("--pin", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_bridge:
        asyncio.run(serve_bridge(args.serve_bridge, args.relay, args.pin))
        return
    cpu = None if args.bridge_cpu == "none" else int(args.bridge_cpu)
    relays = [r for r in args.relays.split(",") if r]
    defaults = {
        "audio": "stock=1,2;forward=10,25" if args.quick else "stock=1,2,4,6;forward=25,50,75,100,125,150",
        "video": "stock=1;forward=5,10" if args.quick else "stock=1,2;forward=10,25,40,50,60,75",
    }
    audio = _steps(args.audio_calls if args.audio_calls is not None else defaults["audio"])
    video = _steps(args.video_calls if args.video_calls is not None else defaults["video"])
    latency = args.latency_calls if args.latency_calls is not None else (5 if args.quick else 30)
    duration = args.duration or (4.0 if args.quick else 10.0)
    prefetch = None if args.door_prefetch == "aiortc" else int(args.door_prefetch)
    result = asyncio.run(run(relays, audio, video, latency, duration, cpu, prefetch))
    load = f"load {result['machine']['loadavg']}, before the run"
    audio_rows, video_rows, latency_rows, summary = [], [], [], []
    for relay, out in result["relays"].items():
        audio_rows += [_row(relay, r, lambda k: "video" not in k) for r in out["audio"]]
        video_rows += [_row(relay, r, lambda k: k != "video") for r in out["video"]]
        for what, s in out["latency"].items():
            latency_rows.append({"relay": relay, "answer ->": what} | s)
        summary.append(
            {
                "relay": relay,
                "audio calls held (target >= 100)": out["audio_calls_held"],
                "video calls held (target >= 50)": out["video_calls_held"],
                "answer -> audible p99 ms (target < 150)": out["latency"]
                .get("first_loud_frame", {})
                .get("p99_ms"),
            }
        )
    pinned = f"bridge pinned to core {cpu}" if cpu is not None else "bridge not pinned"
    emit(
        "media_relay",
        result,
        [
            table(f"two-way Opus audio calls (bridge CPU in % of one core; {pinned}); {load}", audio_rows),
            table(f"two-way 640x480@15 VP8 + Opus video calls ({pinned}); {load}", video_rows),
            table("answer -> each mark at the door (decoding parties), ms", latency_rows),
            table(
                "issue 13 targets: calls held on one core with < 1 % late and >= 99.5 % delivered", summary
            ),
        ],
        args.json_out,
    )


if __name__ == "__main__":
    main()

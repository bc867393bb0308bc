"""The client side of the bridge: what a door station or a resident app sends and counts.

- :class:`ToneTrack`: a generated sine (audio); :class:`TestPatternTrack`: a generated
  video test pattern (moving colour bars and a frame counter that the receiver can read
  back with :func:`read_counter`); :class:`FileTrack`: audio or video from a file (a WAV
  file, a video file) through aiortc's ``MediaPlayer``, looped.
- :class:`ClientPeer`: one party's peer connection to the bridge: sends its tracks,
  receives what the bridge sends (optionally receive-only or send-only transceivers, e.g.
  a listener that previews the door before answering), counts frames per kind, and
  reports the RTC stats per kind (:meth:`ClientPeer.stats`). Its audio receivers hold
  :data:`AUDIO_PREFETCH` packets before playing (aiortc: 4; :func:`set_audio_prefetch`).

Used by the tests, the bench and the agents (``ringflow/agent.py``). Peers made here use
the same rules as the bridge (``media/network.py``): no ICE servers, and host candidates
only on the addresses given to ``use_listen_ips``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import math
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiortc
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from av import AudioFrame, VideoFrame
from av.frame import Frame

from media.forward import missing_source

SAMPLE_RATE = 48000
"""Sample rate of the generated tone, Hz (Opus's native rate: no resampling)."""


class ToneTrack(MediaStreamTrack):
    """A live audio track: a sine of ``frequency_hz`` at ``amplitude`` (0-1 of full
    scale), mono s16 at 48 kHz, one 20 ms frame (960 samples) per ``AUDIO_PTIME``."""

    kind = "audio"

    def __init__(self, frequency_hz: float = 1000.0, amplitude: float = 0.5) -> None:
        super().__init__()
        n = int(AUDIO_PTIME * SAMPLE_RATE)
        self._samples = n
        self._period = array(
            "h",
            (
                int(amplitude * 32767 * math.sin(2 * math.pi * frequency_hz * i / SAMPLE_RATE))
                for i in range(n)
            ),
        ).tobytes()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            await asyncio.sleep(self._start + self._pts / SAMPLE_RATE - time.monotonic())
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._period)
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


# -- video test pattern ---------------------------------------------------------------

COUNTER_BITS = 16
"""Bits of the frame counter drawn in the test pattern's top band (it wraps at 65536)."""

_BAR_LUMA = (180, 168, 145, 133, 63, 51, 28, 16)  # 75 % colour bars (ITU-R BT.801): Y
_BAR_U = (128, 44, 156, 72, 184, 100, 212, 128)  # Cb
_BAR_V = (128, 142, 44, 58, 198, 212, 114, 128)  # Cr
_ONE, _ZERO = 235, 16  # counter bit luma (video range white / black)


def _band_rows(height: int) -> int:
    """Height of the counter band, rows (even, so that chroma rows line up)."""
    return max(2, (height // 8) & ~1)


class TestPatternTrack(MediaStreamTrack):
    """A live video track: ``width`` x ``height`` yuv420p frames at ``fps`` frames per second,
    eight colour bars scrolling left by ``speed_px`` pixels per frame under a band that shows
    the frame number as :data:`COUNTER_BITS` black/white blocks (most significant first).

    Timestamps are on the 90 kHz RTP video clock. ``width`` and ``height`` must be even and
    at least 32 (``ValueError``); ``fps`` > 0. Pure Python (no numpy): a frame is a few
    ``bytes`` concatenations, well under a millisecond at 640x480.
    """

    kind = "video"
    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, speed_px: int = 8) -> None:
        super().__init__()
        if width % 2 or height % 2 or width < 32 or height < 32:
            raise ValueError(f"test pattern size must be even and >= 32: {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0: {fps}")
        self.width, self.height, self.fps = width, height, fps
        self._speed = speed_px & ~1  # even: chroma moves by half as many pixels
        self._count = 0
        self._start: float | None = None

    def _bars(self, values: tuple[int, ...], width: int) -> bytes:
        return b"".join(bytes([v]) * (width * (i + 1) // 8 - width * i // 8) for i, v in enumerate(values))

    def render(self, n: int) -> VideoFrame:
        """Frame number ``n`` of the pattern (``pts`` and ``time_base`` not set)."""
        w, h = self.width, self.height
        frame = VideoFrame(w, h, "yuv420p")
        band = _band_rows(h)
        shift_y = (n * self._speed) % w
        y_row = self._bars(_BAR_LUMA, w)
        y_row = y_row[shift_y:] + y_row[:shift_y]
        bits = [(n >> (COUNTER_BITS - 1 - i)) & 1 for i in range(COUNTER_BITS)]
        band_row = b"".join(
            bytes([_ONE if bit else _ZERO]) * (w * (i + 1) // COUNTER_BITS - w * i // COUNTER_BITS)
            for i, bit in enumerate(bits)
        )
        planes = frame.planes
        _fill(planes[0], [(band_row, band), (y_row, h - band)])
        cw, ch, cband = w // 2, h // 2, band // 2
        shift_c = shift_y // 2
        for plane, values in ((planes[1], _BAR_U), (planes[2], _BAR_V)):
            row = self._bars(values, cw)
            row = row[shift_c:] + row[:shift_c]
            _fill(plane, [(b"\x80" * cw, cband), (row, ch - cband)])
        return frame

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            await asyncio.sleep(self._start + self._count / self.fps - now)
        frame = self.render(self._count)
        frame.pts = int(self._count * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self._count += 1
        return frame


def _fill(plane: Any, rows: list[tuple[bytes, int]]) -> None:
    """Write ``rows`` ([(row bytes, repeat)], top to bottom) into ``plane``, padding every row
    to the plane's ``line_size``."""
    pad = plane.line_size - len(rows[0][0])
    plane.update(b"".join((row + b"\x00" * pad) * repeat for row, repeat in rows))


def read_counter(frame: VideoFrame) -> int | None:
    """The frame number a :class:`TestPatternTrack` drew in ``frame`` (after encoding,
    transport and decoding: any size, any pixel format), or None when the top band is not
    a counter (every sampled block must be clearly black or white: luma < 80 or > 170)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    data = memoryview(plane)
    row = _band_rows(frame.height) // 2
    value = 0
    for i in range(COUNTER_BITS):
        x = frame.width * (2 * i + 1) // (2 * COUNTER_BITS)
        luma = data[row * plane.line_size + x]
        if 80 <= luma <= 170:
            return None
        value = (value << 1) | (luma > 170)
    return value


# -- media from files -----------------------------------------------------------------


class FileTrack(MediaStreamTrack):
    """The ``kind`` ("audio" or "video") stream of the media file ``path`` (a WAV file, a
    webm/mp4/mkv video, anything FFmpeg reads), through aiortc's ``MediaPlayer``, decoded
    and played in real time; audio comes out as s16 stereo 48 kHz 20 ms frames.

    ``loop``: start again at the end (the file is reopened, timestamps keep increasing;
    ``MediaPlayer(loop=True)`` would restart video timestamps at 0 and then decode as fast
    as it can). Without ``loop`` the track ends with the file. The player's stream of the
    other kind, if the file has one, is consumed and dropped (it would pile up).

    Raises ``FileNotFoundError`` (no such file) and ``ValueError`` (not a media file, or
    no ``kind`` stream in it) at construction, so a bad ``--audio``/``--video`` fails at once.
    """

    def __init__(self, path: str | Path, kind: str, loop: bool = True) -> None:
        super().__init__()
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video: {kind!r}")
        self.kind = kind
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no media file {self.path}")
        try:
            with av.open(str(self.path)) as container:
                kinds = {s.type for s in container.streams}
        except av.FFmpegError as e:
            raise ValueError(f"{self.path} is not a media file: {e}") from e
        if kind not in kinds:
            raise ValueError(f"{self.path} has no {kind} stream")
        self.loop = loop
        self._player: MediaPlayer | None = None
        self._track: MediaStreamTrack | None = None
        self._drain: asyncio.Task[None] | None = None
        self._offset = 0  # added to this pass's pts (source time base)
        self._last: int | None = None  # last pts returned
        self._step = 1  # last pts increment seen

    def _open(self) -> MediaStreamTrack:
        player = MediaPlayer(str(self.path))
        track = player.audio if self.kind == "audio" else player.video
        other = player.video if self.kind == "audio" else player.audio
        assert track is not None  # checked in __init__
        self._player, self._track = player, track
        if other is not None:
            self._drain = asyncio.create_task(_consume(other))
        return track

    def _close(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if self._player is not None:
            for t in (self._player.audio, self._player.video):
                if t is not None:
                    t.stop()
        self._player = self._track = None

    async def recv(self) -> Frame:
        while self.readyState == "live":
            track = self._track or self._open()
            try:
                frame = await track.recv()
            except MediaStreamError:
                self._close()
                if not self.loop:
                    break
                self._offset = self._last + self._step if self._last is not None else 0
                continue
            assert isinstance(frame, Frame) and frame.pts is not None
            pts = frame.pts + self._offset
            if self._last is None:
                self._step = frame.samples if isinstance(frame, AudioFrame) else 1
            elif pts > self._last:
                self._step = pts - self._last
            frame.pts = self._last = pts
            return frame
        self.stop()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._close()


async def _consume(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


# -- audio playout ----------------------------------------------------------------------

AUDIO_PREFETCH = 1
"""Audio packets a reference client's aiortc receiver holds after a frame before it hands
that frame to the decoder (:class:`ClientPeer` ``audio_prefetch``; aiortc's own is
:data:`AIORTC_AUDIO_PREFETCH`).

aiortc's audio ``JitterBuffer`` releases a frame once ``prefetch`` complete frames follow it
(1 and 0 alike: the next packet's timestamp ends a frame), in sequence order, one frame per
arriving packet; it never paces playout. So its prefetch is a fixed delay of ``prefetch`` x
20 ms on every frame, the first one included (answer -> first audible frame at the door:
80 ms at 4, 20 ms at 1; ``bench.media_relay`` latency, bench/RESULTS.md section 6b), and it
buys nothing against loss (a missing packet stalls the buffer until 16 packets are queued,
whatever the prefetch) and little against jitter: reordered packets are put back in order at
any prefetch as long as the one that is late arrives before 16 others; a packet later than
the prefetch just delays its predecessors by as much (the buffer then stays that much deeper:
aiortc never shrinks it). A door or an app on a LAN or Wi-Fi (jitter of a few ms, no
reordering) loses nothing at 1; a client that plays frames straight to a sound device over a
jittery path needs a playout buffer there (the device's), which a bigger prefetch does not
give it."""

AIORTC_AUDIO_PREFETCH = 4
"""aiortc's own audio prefetch (``RTCRtpReceiver.__init__``: ``JitterBuffer(capacity=16,
prefetch=4)``), 80 ms of 20 ms frames."""

MAX_AUDIO_PREFETCH = 8
"""Largest audio prefetch accepted (160 ms; the buffer holds 16 packets)."""

_AUDIO_JITTER_CAPACITY = 16
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # name-mangled private attribute
_PLAYOUT_NEEDS: tuple[tuple[type, str, str], ...] = (
    # (class, method, text its source must contain): the audio receiver makes its jitter
    # buffer in __init__ with these arguments and feeds every packet to it, and the buffer
    # releases a frame after ``prefetch`` complete frames
    (RTCRtpReceiver, "__init__", "self.__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)"),
    (RTCRtpReceiver, "_handle_rtp_packet", "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)"),
    (JitterBuffer, "__init__", "self._prefetch = prefetch"),
    (JitterBuffer, "_remove_frame", "if frames >= self._prefetch:"),
)


class PlayoutUnsupported(RuntimeError):
    """The installed aiortc no longer makes its audio jitter buffer as :func:`set_audio_prefetch`
    expects (it would otherwise change a private attribute that no longer does anything)."""


@functools.cache
def check_playout() -> str:
    """Verify, by reading aiortc's source (:data:`_PLAYOUT_NEEDS`, as
    ``media.forward.check_aiortc`` does for the bridge's hooks), that an audio
    ``RTCRtpReceiver`` keeps its jitter buffer in the private ``__jitter_buffer`` made in its
    ``__init__`` as ``JitterBuffer(capacity=16, prefetch=4)`` and feeds it every packet, so that
    replacing it before the first packet sets the playout prefetch. Returns aiortc's version;
    raises :class:`PlayoutUnsupported` naming what changed. Cached (one check per process)."""
    changed = missing_source(_PLAYOUT_NEEDS)
    if changed is not None:
        raise PlayoutUnsupported(f"{changed}; media/peer.py set_audio_prefetch must be re-verified")
    return str(aiortc.__version__)


def set_audio_prefetch(transceiver: RTCRtpTransceiver, prefetch: int) -> None:
    """Make the receiver of the audio ``transceiver`` (before its first packet) hold
    ``prefetch`` packets after a frame before decoding it, instead of aiortc's
    :data:`AIORTC_AUDIO_PREFETCH` (see :data:`AUDIO_PREFETCH` for the trade-off). Raises
    ``ValueError`` (``prefetch`` not in 1..:data:`MAX_AUDIO_PREFETCH`, or not an audio
    transceiver) and :class:`PlayoutUnsupported` (:func:`check_playout`)."""
    if not 1 <= prefetch <= MAX_AUDIO_PREFETCH:
        raise ValueError(f"audio prefetch must be 1..{MAX_AUDIO_PREFETCH} packets: {prefetch}")
    if transceiver.kind != "audio":
        raise ValueError(f"not an audio transceiver: {transceiver.kind}")
    check_playout()
    buffer = JitterBuffer(capacity=_AUDIO_JITTER_CAPACITY, prefetch=prefetch)
    setattr(transceiver.receiver, _JITTER_BUFFER, buffer)


def audio_prefetch(receiver: RTCRtpReceiver) -> int:
    """The prefetch of the audio ``receiver``'s jitter buffer, packets (aiortc private state,
    verified by :func:`check_playout`)."""
    check_playout()
    return int(getattr(receiver, _JITTER_BUFFER)._prefetch)


# -- peers ------------------------------------------------------------------------------


def peak(frame: AudioFrame) -> int:
    """Largest absolute s16 sample of ``frame`` (0 = silence); ``frame`` must be s16."""
    samples = array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


@dataclass
class Received:
    """What arrived on one received track: frame count, loud frames (audio), test-pattern
    frames (video: frames whose counter :func:`read_counter` could read, and the last
    counter), first arrival."""

    kind: str
    frames: int = 0
    loud: int = 0  # audio frames with a peak above LOUD (a tone, not silence)
    first_at: float | None = None  # time.monotonic() of the first frame
    loud_at: float | None = None  # time.monotonic() of the latest loud audio frame
    pattern: int = 0  # video frames that carry a test-pattern counter
    last_counter: int | None = None

    LOUD = 1000


@dataclass
class KindStats:
    """One media kind of a peer connection (RTC stats, aiortc ``getStats``; bytes are RTP
    payload bytes as RTCP sender reports count them, RFC 3550 section 6.4.1).

    ``frames_received``: decoded frames (``loud_frames`` of them audible audio,
    ``pattern_frames`` a test pattern); ``packets_received``: ``inbound-rtp``;
    ``bytes_received``: the far end's count of what it sent us (``remote-outbound-rtp``
    ``bytesSent``, from its last RTCP sender report, so up to a few seconds behind);
    ``packets_sent``/``bytes_sent``: ``outbound-rtp``."""

    kind: str
    frames_received: int = 0
    loud_frames: int = 0
    pattern_frames: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    bytes_sent: int = 0


@dataclass
class PeerStats:
    """A peer connection's traffic: per kind (:class:`KindStats`) and on the wire
    (``transport_*``: every SRTP/SRTCP byte and packet of the DTLS transport, headers included)."""

    kinds: dict[str, KindStats] = field(default_factory=dict)
    transport_bytes_sent: int = 0
    transport_bytes_received: int = 0
    transport_packets_sent: int = 0
    transport_packets_received: int = 0

    def kind(self, kind: str) -> KindStats:
        """The stats of ``kind`` (zeros when the peer has no such stream)."""
        return self.kinds.get(kind) or KindStats(kind)

    def describe(self) -> str:
        """One line for a log: per kind frames and bytes each way, then the wire totals."""
        parts = [
            f"{k.kind}: sent {k.bytes_sent} B/{k.packets_sent} pkts, received {k.frames_received} frames/"
            f"{k.packets_received} pkts/~{k.bytes_received} B"
            for k in self.kinds.values()
        ]
        parts.append(f"wire: sent {self.transport_bytes_sent} B, received {self.transport_bytes_received} B")
        return "; ".join(parts)


@dataclass
class ClientPeer:
    """One party's peer connection to the bridge: sends ``tracks``, counts what arrives
    (``received``, one entry per remote track). Close with :meth:`close` (in ``finally``).

    Transceivers: one per track, ``sendrecv`` (``sendonly`` with ``send_only``); one
    ``recvonly`` per kind in ``receive`` that no track sends (e.g. ``receive=("video",)``
    for a listener without a camera that previews the door). With neither tracks nor
    ``receive``: one receive-only audio transceiver.

    ``audio_prefetch``: packets each audio receiver holds after a frame before decoding it
    (default :data:`AUDIO_PREFETCH` = 1, 20 ms; None: aiortc's own 4, 80 ms; 1 ..
    :data:`MAX_AUDIO_PREFETCH`, else ``ValueError``; :func:`set_audio_prefetch`).
    """

    tracks: list[MediaStreamTrack] = field(default_factory=list)
    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    received: list[Received] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)
    receive: tuple[str, ...] = ()
    send_only: bool = False
    read_pattern: bool = True  # read the test-pattern counter of received video frames
    _loud: asyncio.Event = field(default_factory=asyncio.Event)  # set at each loud audio frame
    audio_prefetch: int | None = AUDIO_PREFETCH

    def __post_init__(self) -> None:
        direction = "sendonly" if self.send_only else "sendrecv"
        for track in self.tracks:
            self.pc.addTransceiver(track, direction=direction)
        sent = {t.kind for t in self.tracks}
        receive = self.receive if (self.receive or self.tracks) else ("audio",)
        for kind in receive:
            if kind not in sent or self.send_only:
                self.pc.addTransceiver(kind, direction="recvonly")
        if self.audio_prefetch is not None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "audio":
                    set_audio_prefetch(transceiver, self.audio_prefetch)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            got = Received(track.kind)
            self.received.append(got)
            self._readers.append(asyncio.create_task(self._read(track, got, self.read_pattern, self._loud)))

    async def offer(self) -> str:
        """A complete SDP offer (setLocalDescription waits for ICE gathering)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        """Apply the bridge's answer; ICE and DTLS then start."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def connected(self) -> None:
        """Wait until the connection state is ``connected``; raises ``ConnectionError`` if
        it becomes ``failed`` or ``closed`` instead (bound it with ``asyncio.timeout``)."""
        done = asyncio.Event()
        self.pc.add_listener("connectionstatechange", done.set)
        try:
            while self.pc.connectionState != "connected":
                if self.pc.connectionState in ("failed", "closed"):
                    raise ConnectionError(f"peer connection {self.pc.connectionState}")
                done.clear()
                await done.wait()
        finally:
            self.pc.remove_listener("connectionstatechange", done.set)

    def heard(self, kind: str = "audio") -> int:
        """Loud frames received on ``kind`` tracks (audio) or frames (video)."""
        return sum(r.loud if kind == "audio" else r.frames for r in self.received if r.kind == kind)

    def loud_since(self, t: float) -> bool:
        """Whether a loud audio frame arrived after ``t`` (``time.monotonic()``)."""
        return any(r.loud_at is not None and r.loud_at > t for r in self.received if r.kind == "audio")

    async def wait_loud(self, since: float) -> float:
        """Wait for a loud audio frame that arrived after ``since`` (``time.monotonic()``) and
        return its arrival time (bound it with ``asyncio.timeout``)."""
        while True:
            self._loud.clear()
            times = [r.loud_at for r in self.received if r.kind == "audio" and r.loud_at is not None]
            if times and max(times) > since:
                return max(times)
            await self._loud.wait()

    def frames(self, kind: str) -> int:
        """Frames received on ``kind`` tracks (audio: silent ones included)."""
        return sum(r.frames for r in self.received if r.kind == kind)

    async def stats(self) -> PeerStats:
        """The connection's :class:`PeerStats` now (RTC stats plus this peer's frame counts)."""
        report = await self.pc.getStats()
        out = PeerStats()
        for r in self.received:
            k = out.kinds.setdefault(r.kind, KindStats(r.kind))
            k.frames_received += r.frames
            k.loud_frames += r.loud
            k.pattern_frames += r.pattern
        for s in report.values():
            kind = getattr(s, "kind", None)
            if s.type == "transport":
                out.transport_bytes_sent += s.bytesSent
                out.transport_bytes_received += s.bytesReceived
                out.transport_packets_sent += s.packetsSent
                out.transport_packets_received += s.packetsReceived
                continue
            if kind is None:
                continue
            k = out.kinds.setdefault(kind, KindStats(kind))
            if s.type == "inbound-rtp":
                k.packets_received += s.packetsReceived
            elif s.type == "remote-outbound-rtp":
                k.bytes_received += s.bytesSent
            elif s.type == "outbound-rtp":
                k.packets_sent += s.packetsSent
                k.bytes_sent += s.bytesSent
        return out

    async def close(self) -> None:
        """Stop the senders and readers and close the connection."""
        try:
            for track in self.tracks:
                track.stop()
            for task in self._readers:
                task.cancel()
            for task in self._readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self.pc.close()

    @staticmethod
    async def _read(track: MediaStreamTrack, got: Received, read_pattern: bool, loud: asyncio.Event) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            got.frames += 1
            if got.first_at is None:
                got.first_at = time.monotonic()
            if isinstance(frame, AudioFrame):
                if frame.format.name == "s16" and peak(frame) > Received.LOUD:
                    got.loud += 1
                    got.loud_at = time.monotonic()
                    loud.set()
            elif read_pattern and isinstance(frame, VideoFrame):
                counter = read_counter(frame)
                if counter is not None:
                    got.pattern += 1
                    got.last_counter = counter

"""Forward, don't transcode: relay encoded media between aiortc peers (issue 3).

aiortc's stock path decodes every received frame (a decoder thread per receiver) and
re-encodes it in every sender: measured ~10 % of a core per one-way Opus stream, 40 %
of it in the pure-Python ``compute_audio_level_dbov`` of the sender, and ~10 % per
640x480 VP8 stream. When both legs negotiated the same codec, the bridge can hand the
sender the encoded frame it received instead: ``RTCRtpSender._next_encoded_frame``
passes anything that is not an ``av.Frame`` to ``encoder.pack()``, which only
re-packetizes (RTP payload format) and rescales ``pts`` by ``time_base``.

Integration (the bridge, or any aiortc process):

1. :func:`enable_forwarding` on each ``RTCPeerConnection`` **before**
   ``setRemoteDescription``. The tracks it receives then yield ``av.Packet`` (one
   depayloaded encoded frame each: the receiver's jitter buffer output, ``pts`` in
   ``time_base`` = 1/clock rate, ``is_keyframe`` set) instead of decoded frames, and
   its senders tell their track which codec they negotiated and pass keyframe
   requests (RTCP PLI/FIR from the far end) on to it.
2. :class:`ForwardingRelay` in place of ``aiortc.contrib.media.MediaRelay``:
   ``subscribe(track, buffered=False, mode="auto") -> MediaStreamTrack``, several
   subscribers per source. In ``auto`` mode a subscriber gets packets when the sender
   that carries it negotiated the source's codec, and decoded frames otherwise (a
   different codec, or no sender at all, e.g. ``MediaRecorder``): the fallback decodes
   once per source, only while such a subscriber exists. ``mode="encoded"`` always
   takes what the source yields, never decoding (the bridge's drain that notes the last
   frame arrival per party); ``mode="decoded"`` always frames.
3. A track that wraps a subscriber (the bridge's ``RoomTrack``, which follows a party
   that re-joins) must pass on the two calls of :class:`EncodedSink`:
   ``set_output_codec`` (remember it, hand it to each new subscriber) and
   ``request_keyframe``. Without them, ``auto`` falls back to decoding: correct, slower.

How ``media/bridge.py`` uses it (its relay is ``Room.relay``, every consumer goes
through ``Room.subscribe``): ``Room.relay`` = ``ForwardingRelay()``;
``enable_forwarding(pc)`` right after each ``RTCPeerConnection(...)`` in ``Bridge.offer``;
the drain subscribes with ``mode="encoded"`` (an ``auto`` drain has no sender, so it would
decode every stream); ``RoomTrack`` implements :class:`EncodedSink` (keep the codec, hand
it to each new proxy; pass ``request_keyframe`` to the current proxy). The recorder's
``RoomTrack``\\ s have no sender and get frames as they are.

Video needs keyframes: a forwarding video subscriber starts by dropping frames until
a keyframe arrives, and the relay asks the source peer for one (RTCP PLI, RFC 4585
section 6.3.1) when a subscriber starts, falls behind, or when the receiver itself
detected loss (aiortc sends a PLI when its jitter buffer overflows or a packet is lost
for good), retrying every :data:`KEYFRAME_RETRY_S` while someone still waits.

Private aiortc API used (no public hook exists for encoded frames in aiortc
1.16): the receiver's decoder queue (``RTCRtpReceiver.__decoder_queue``, whose
``(codec, JitterFrame)`` items we take before the decoder thread sees them),
``RemoteStreamTrack._queue``, ``RTCRtpReceiver._send_rtcp_pli`` and
``RTCRtpSender._send_keyframe``. :func:`check_aiortc` verifies them (raising
:class:`ForwardingUnsupported` with what changed) before any peer is touched, and
``tests/test_media_forward.py`` fails on an aiortc version not in
:data:`TESTED_AIORTC`. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import aiortc
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from av.frame import Frame
from av.packet import Packet

log = logging.getLogger(__name__)

TESTED_AIORTC = ("1.16.0",)
"""aiortc versions whose private decode path this module was checked against."""

KEYFRAME_RETRY_S = 1.0
"""Interval between PLIs to a source while a subscriber still waits for a keyframe, s."""

KEYFRAME_MIN_INTERVAL_S = 0.2
"""Least interval between two PLIs to one source, s (a burst of new subscribers, or
of far-end PLIs, costs the source one keyframe)."""

UNBUFFERED_FRAMES = 3
"""Frames a ``buffered=False`` subscriber may have waiting (60 ms of 20 ms audio, 200 ms
of 15 fps video); the next one is dropped: audio drops the oldest frame, forwarded
video drops all and waits for a keyframe (a missing encoded frame breaks the frames
that refer to it)."""

DECODE_QUEUE = 8
"""Encoded frames waiting for the fallback decoder of one source before it drops."""

Mode = Literal["auto", "encoded", "decoded"]


class ForwardingUnsupported(RuntimeError):
    """The installed aiortc no longer has the private hooks this module relies on."""


class EncodedSink(Protocol):
    """What a track given to an :func:`enable_forwarding` peer's sender may implement
    (:class:`RelayedTrack` does; a wrapper passes both on to the track it wraps)."""

    def set_output_codec(self, codec: RTCRtpCodecParameters | None) -> None:
        """The codec the sender negotiated (RTP codec parameters; None: unknown)."""
        ...

    def request_keyframe(self) -> None:
        """The far end lost a picture (it sent RTCP PLI or FIR to the sender)."""
        ...


# ---------------------------------------------------------------- aiortc hooks

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_HOOKED = "_ringflow_forward"  # marks a hooked receiver, sender or peer connection
_TAP = "_ringflow_tap"  # on a RemoteStreamTrack: its ReceiverTap


@functools.cache
def check_aiortc() -> str:
    """Verify that the installed aiortc still has the decode path this module hooks and
    return its version. Raises :class:`ForwardingUnsupported` naming what changed.

    The checks read aiortc's source: the receiver must hand ``(codec, encoded_frame)``
    to its decoder queue, start its decoder thread on that queue with the track's
    ``_queue`` as output, and have ``_send_rtcp_pli``; the sender must pass non-frames
    to ``encoder.pack`` and have ``_send_keyframe``."""
    try:
        handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
        receive = inspect.getsource(RTCRtpReceiver.receive)
        next_frame = inspect.getsource(RTCRtpSender._next_encoded_frame)
    except (AttributeError, OSError, TypeError) as e:
        raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: cannot read its source: {e}") from e
    needs = [
        ("RTCRtpReceiver._handle_rtp_packet", handle, "self.__decoder_queue.put((codec, encoded_frame))"),
        ("RTCRtpReceiver.receive", receive, "self.__decoder_queue"),
        ("RTCRtpReceiver.receive", receive, "self._track._queue"),
        ("RTCRtpSender._next_encoded_frame", next_frame, "self.__encoder.pack(data)"),
    ]
    for where, source, text in needs:
        if text not in source:
            raise ForwardingUnsupported(
                f"aiortc {aiortc.__version__}: {where} no longer contains {text!r}; "
                "media/forward.py must be re-verified against this version"
            )
    for cls, name in ((RTCRtpReceiver, "_send_rtcp_pli"), (RTCRtpSender, "_send_keyframe")):
        if not callable(getattr(cls, name, None)):
            raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: {cls.__name__}.{name} is gone")
    if "_queue" not in inspect.getsource(RemoteStreamTrack.__init__):
        raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: RemoteStreamTrack._queue is gone")
    if aiortc.__version__ not in TESTED_AIORTC:
        log.warning("aiortc %s is not in media.forward.TESTED_AIORTC; hooks verified", aiortc.__version__)
    return aiortc.__version__


@functools.cache
def _time_base(clock_rate: int) -> fractions.Fraction:
    return fractions.Fraction(1, clock_rate)


def is_keyframe(codec: RTCRtpCodecParameters, data: bytes) -> bool:
    """Whether the depayloaded frame ``data`` can be decoded on its own.

    Audio: always. VP8 (RFC 6386 section 9.1): the frame tag's P bit is 0 and the start
    code ``9d 01 2a`` follows. H.264 (Annex B, as aiortc depayloads it): it holds an IDR
    slice (NAL unit type 5, ITU-T H.264 table 7-1). Raises ``ValueError`` for another
    video codec."""
    if codec.mimeType.lower().startswith("audio/"):
        return True
    name = codec.name.lower()
    if name == "vp8":
        return len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    if name == "h264":
        pos = data.find(b"\x00\x00\x01")
        while pos >= 0 and pos + 3 < len(data):
            if data[pos + 3] & 0x1F == 5:
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return False
    raise ValueError(f"no keyframe rule for {codec.mimeType}")


def same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    """Whether frames encoded for ``a`` can be sent as ``b`` unchanged: same MIME type,
    clock rate and channels, and for H.264 the same ``profile-level-id`` and
    ``packetization-mode`` (RFC 6184 section 8.1). Payload types may differ."""
    if (a.mimeType.lower(), a.clockRate, a.channels or 1) != (
        b.mimeType.lower(),
        b.clockRate,
        b.channels or 1,
    ):
        return False
    if a.name.lower() == "h264":
        keys = ("profile-level-id", "packetization-mode")
        return all(str(a.parameters.get(k, "")).lower() == str(b.parameters.get(k, "")).lower() for k in keys)
    return True


class ReceiverTap:
    """One receiver's encoded frames, taken before its decoder thread.

    Installs itself on ``receiver`` (see the module docstring for the private API):
    each complete encoded frame the jitter buffer yields becomes an ``av.Packet``
    (``pts`` in ``time_base`` 1/clock rate, starting at 0; ``is_keyframe``) put on
    ``track``'s queue, so ``track.recv()`` returns packets, or handed to ``sink`` when
    one is set (a :class:`ForwardingRelay` source: one task hop less per frame; the track
    then yields nothing but its end). The decoder thread still runs, idle, and still ends
    the track when the receiver stops. ``codec`` is the codec
    of the last frame; ``on_loss`` callbacks run when aiortc itself sends a PLI (it lost
    picture data)."""

    def __init__(self, receiver: RTCRtpReceiver, track: RemoteStreamTrack) -> None:
        self.receiver = receiver
        self.track = track
        self.kind = track.kind
        self.codec: RTCRtpCodecParameters | None = None
        self.frames = 0
        self.on_loss: list[Callable[[], None]] = []
        self.sink: Callable[[RTCRtpCodecParameters, Packet], None] | None = None
        self._media_ssrcs: list[int] = []
        self._rtx_ssrcs: set[int] = set()
        self._pli: Callable[[int], Awaitable[None]] = receiver._send_rtcp_pli
        decoder_queue = getattr(receiver, _DECODER_QUEUE, None)
        if decoder_queue is None:
            raise ForwardingUnsupported("RTCRtpReceiver has no decoder queue")
        self._to_decoder = decoder_queue.put
        decoder_queue.put = self._put  # instance attribute: only this receiver
        receiver._send_rtcp_pli = self._aiortc_pli  # type: ignore[method-assign]
        self._receive = receiver.receive
        receiver.receive = self._on_receive  # type: ignore[method-assign]
        setattr(track, _TAP, self)

    def _put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stops: let the decoder thread end the track
            self._to_decoder(item, block, timeout)
            return
        codec, frame = item
        self.codec = codec
        packet = Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = _time_base(codec.clockRate)
        packet.is_keyframe = is_keyframe(codec, frame.data)
        self.frames += 1
        if self.sink is None:
            self.track._queue.put_nowait(packet)
            return
        try:
            self.sink(codec, packet)
        except Exception:  # never into aiortc's receive loop
            log.exception("relay: forwarding a %s frame failed", codec.mimeType)

    async def _on_receive(self, parameters: Any) -> None:
        self._media_ssrcs = [e.ssrc for e in parameters.encodings if e.ssrc]
        self._rtx_ssrcs = {e.rtx.ssrc for e in parameters.encodings if e.rtx}
        await self._receive(parameters)

    async def _aiortc_pli(self, media_ssrc: int) -> None:
        for callback in list(self.on_loss):
            callback()
        await self._pli(media_ssrc)

    async def request_keyframe(self) -> None:
        """Send RTCP PLI for each media SSRC of this receiver (from its receive
        parameters, else the sources seen in the last 10 s minus RTX ones)."""
        ssrcs = self._media_ssrcs or [
            s.source for s in self.receiver.getSynchronizationSources() if s.source not in self._rtx_ssrcs
        ]
        for ssrc in ssrcs:
            await self._pli(ssrc)


def tap_of(track: MediaStreamTrack) -> ReceiverTap | None:
    """The :class:`ReceiverTap` of a track received by an :func:`enable_forwarding` peer."""
    tap = getattr(track, _TAP, None)
    return tap if isinstance(tap, ReceiverTap) else None


def _bind(track: MediaStreamTrack | None, codec: RTCRtpCodecParameters | None) -> None:
    set_codec = getattr(track, "set_output_codec", None)
    if callable(set_codec):
        set_codec(codec)


def _hook_sender(sender: RTCRtpSender) -> None:
    """Tell the sender's track its negotiated codec (at ``send`` and ``replaceTrack``),
    and pass PLI/FIR from the far end to the track's ``request_keyframe``."""
    state: dict[str, RTCRtpCodecParameters | None] = {"codec": None}
    send, replace, keyframe = sender.send, sender.replaceTrack, sender._send_keyframe

    async def hooked_send(parameters: Any) -> None:
        state["codec"] = parameters.codecs[0] if parameters.codecs else None
        _bind(sender.track, state["codec"])
        await send(parameters)

    def hooked_replace(track: MediaStreamTrack | None) -> None:
        replace(track)
        if state["codec"] is not None:
            _bind(track, state["codec"])

    def hooked_keyframe() -> None:
        keyframe()  # a decoded subscriber's encoder makes one
        request = getattr(sender.track, "request_keyframe", None)
        if callable(request):
            request()

    sender.send = hooked_send  # type: ignore[method-assign]
    sender.replaceTrack = hooked_replace  # type: ignore[method-assign]
    sender._send_keyframe = hooked_keyframe  # type: ignore[method-assign]


def _hook_transceivers(pc: RTCPeerConnection) -> None:
    for transceiver in pc.getTransceivers():
        receiver, sender = transceiver.receiver, transceiver.sender
        if not getattr(receiver, _HOOKED, False) and isinstance(receiver.track, RemoteStreamTrack):
            ReceiverTap(receiver, receiver.track)
            setattr(receiver, _HOOKED, True)
        if not getattr(sender, _HOOKED, False):
            _hook_sender(sender)
            setattr(sender, _HOOKED, True)


def enable_forwarding(pc: RTCPeerConnection) -> RTCPeerConnection:
    """Make ``pc`` receive encoded frames (``av.Packet``) and tell its senders' tracks
    their codec and keyframe requests; returns ``pc``. Call before
    ``setRemoteDescription`` (at the latest before ``setLocalDescription``): transceivers
    are hooked as they appear (on ``track`` and ``signalingstatechange``, which aiortc
    emits before it starts any receiver or sender). Idempotent.

    Raises :class:`ForwardingUnsupported` (:func:`check_aiortc`) on an aiortc whose
    decode path changed. Whatever consumes ``pc``'s received tracks must accept packets:
    :class:`ForwardingRelay`, a sender (aiortc packs them as they are), or code that
    only counts them; ``MediaRecorder`` needs frames (a ``decoded`` subscription)."""
    check_aiortc()
    if getattr(pc, _HOOKED, False):
        return pc
    setattr(pc, _HOOKED, True)
    _hook_transceivers(pc)
    pc.on("track", lambda _track: _hook_transceivers(pc))
    pc.on("signalingstatechange", lambda: _hook_transceivers(pc))
    return pc


# ---------------------------------------------------------------- the relay


class RelayedTrack(MediaStreamTrack):
    """One subscriber of a :class:`ForwardingRelay` source (an :class:`EncodedSink`).

    ``recv()`` returns ``av.Packet`` or ``av.Frame`` per ``mode`` (module docstring);
    raises ``MediaStreamError`` once the source ended or after ``stop()``. Counters:
    ``forwarded`` packets, ``decoded`` frames, ``dropped`` (slow subscriber or waiting for
    a keyframe)."""

    def __init__(self, relay: ForwardingRelay, source: _Source, buffered: bool, mode: Mode) -> None:
        super().__init__()
        self.kind = source.track.kind
        self.mode: Mode = mode
        self.output_codec: RTCRtpCodecParameters | None = None
        self.forwarded = 0
        self.decoded = 0
        self.dropped = 0
        self.keyframe_waits = 0
        self._source: _Source | None = source
        self._limit = None if buffered else UNBUFFERED_FRAMES
        self._items: collections.deque[Packet | Frame | None] = collections.deque()
        self._ready = asyncio.Event()
        self._started = False
        self._need_keyframe = self.kind == "video"

    def set_output_codec(self, codec: RTCRtpCodecParameters | None) -> None:
        if codec is not None and self.output_codec is not None and same_codec(codec, self.output_codec):
            return
        self.output_codec = codec
        self._need_keyframe = self.kind == "video"
        if self._started and self._source is not None:
            self._source.keyframe_wanted(urgent=True)

    def request_keyframe(self) -> None:
        if self._source is not None and self.takes_packets(self._source.codec):
            self._source.keyframe_wanted(urgent=True)

    def takes_packets(self, codec: RTCRtpCodecParameters | None) -> bool:
        """Whether this subscriber is given the source's packets when it sends ``codec``."""
        if self.mode != "auto":
            return self.mode == "encoded"
        return codec is not None and self.output_codec is not None and same_codec(codec, self.output_codec)

    @property
    def waits_for_keyframe(self) -> bool:
        return self._need_keyframe

    def _push(self, item: Packet | Frame | None) -> None:
        if item is None:
            self._items.append(None)
        elif isinstance(item, Packet):
            if self._need_keyframe:
                if not item.is_keyframe:
                    self.dropped += 1
                    return
                self._need_keyframe = False
            if self._limit is not None and len(self._items) >= self._limit:
                if self.kind == "video":  # the waiting frames refer to each other: drop them all
                    self.dropped += len(self._items) + 1
                    self._items.clear()
                    self._need_keyframe = True
                    self.keyframe_waits += 1
                    if self._source is not None:
                        self._source.keyframe_wanted(urgent=True)
                    self._ready.set()
                    return
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.forwarded += 1
        else:
            if self._limit is not None and len(self._items) >= self._limit:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.decoded += 1
        self._ready.set()

    def _lost(self) -> None:
        """The source lost picture data: forwarded video resumes at the next keyframe."""
        if self.kind == "video" and not self._need_keyframe:
            self._need_keyframe = True
            self.keyframe_waits += 1

    async def recv(self) -> Packet | Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started and self._source is not None:
            self._started = True
            self._source.start(self)
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
            if self.readyState != "live":
                raise MediaStreamError
        item = self._items.popleft()
        if item is None:
            self.stop()
            raise MediaStreamError
        return item

    def stop(self) -> None:
        super().stop()
        if self._source is not None:
            self._source.remove(self)
            self._source = None
        self._ready.set()


class _Source:
    """A relayed source track: reads it once, fans out to its started subscribers, and
    decodes (fallback) while a started subscriber wants frames of a packet source."""

    def __init__(self, relay: ForwardingRelay, track: MediaStreamTrack) -> None:
        self.relay = relay
        self.track = track
        self.subscribers: list[RelayedTrack] = []
        self.task: asyncio.Task[None] | None = None
        self.codec: RTCRtpCodecParameters | None = None
        self.tap = tap_of(track)
        self.last_arrival: float | None = None  # loop.time() of the last frame or packet
        self.keyframe_requests = 0
        self._last_pli = -1e9
        self._decoder: Decoder | None = None
        self._decoder_codec: RTCRtpCodecParameters | None = None
        self._decoder_synced = False
        self._decode_q: asyncio.Queue[tuple[RTCRtpCodecParameters, Packet]] | None = None
        self._decode_task: asyncio.Task[None] | None = None
        self._pli_task: asyncio.Task[None] | None = None
        self._lost = False
        if self.tap is not None:
            self.tap.on_loss.append(self._on_loss)
            self.tap.sink = self._on_packet  # the relay alone reads a relayed tapped track

    def _on_packet(self, codec: RTCRtpCodecParameters, packet: Packet) -> None:
        self.last_arrival = asyncio.get_running_loop().time()
        self._packet(codec, packet)

    def start(self, sub: RelayedTrack) -> None:
        if sub not in self.subscribers:
            self.subscribers.append(sub)
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        if sub.waits_for_keyframe and sub.takes_packets(self.codec):
            self.keyframe_wanted(urgent=True)

    def remove(self, sub: RelayedTrack) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def _on_loss(self) -> None:
        self._lost = True
        self._last_pli = asyncio.get_running_loop().time()  # aiortc is sending one now

    def keyframe_wanted(self, urgent: bool = False) -> None:
        """Ask the source peer for a keyframe (RTCP PLI). ``urgent`` (a new or lagging
        subscriber, a far-end PLI): unless one went out in the last
        :data:`KEYFRAME_MIN_INTERVAL_S`; else (still waiting) every :data:`KEYFRAME_RETRY_S`.
        No-op for audio or a source without a tap."""
        if self.tap is None or self.track.kind != "video":
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_pli < (KEYFRAME_MIN_INTERVAL_S if urgent else KEYFRAME_RETRY_S):
            return
        if self._pli_task is not None and not self._pli_task.done():
            return
        self._last_pli = now
        self.keyframe_requests += 1
        self.relay.keyframe_requests += 1
        self._pli_task = asyncio.ensure_future(self.tap.request_keyframe())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    item: Packet | Frame | None = await self.track.recv()
                except MediaStreamError:
                    item = None
                if item is None:
                    break
                self.last_arrival = loop.time()
                if isinstance(item, Packet) and self.tap is not None and self.tap.codec is not None:
                    self._packet(self.tap.codec, item)
                else:
                    self.relay.frames_in += 1
                    for sub in list(self.subscribers):
                        sub._push(item)
        finally:
            for sub in list(self.subscribers):
                sub._push(None)
            self.subscribers.clear()
            await self._stop_decoder()
            if self.tap is not None:
                self.tap.sink = None
                self.tap.on_loss.remove(self._on_loss)
            self.relay._ended(self)

    def _packet(self, codec: RTCRtpCodecParameters, packet: Packet) -> None:
        self.codec = codec
        self.relay.packets_in += 1
        if self._lost:  # aiortc lost picture data (and sent a PLI itself)
            self._lost = False
            self._decoder_synced = False
            for sub in self.subscribers:
                sub._lost()
        wants_frames = waiting = False
        for sub in list(self.subscribers):
            if sub.takes_packets(codec):
                sub._push(packet)
                waiting = waiting or sub.waits_for_keyframe
            else:
                wants_frames = True
        if wants_frames:
            self._decode(codec, packet)
            waiting = waiting or not self._decoder_synced
        if waiting:
            self.keyframe_wanted()

    def _decode(self, codec: RTCRtpCodecParameters, packet: Packet) -> None:
        """Queue ``packet`` for the fallback decoder (from a keyframe on, for video)."""
        if not self._decoder_synced:
            if not packet.is_keyframe:
                return
            self._decoder_synced = True
        if self._decode_q is None:
            self._decode_q = asyncio.Queue(DECODE_QUEUE)
            self._decode_task = asyncio.ensure_future(self._decode_loop())
        if self._decode_q.full():  # the decoder lags: drop, and restart at a keyframe
            self.relay.decode_dropped += 1
            if self.track.kind == "video":
                self._decoder_synced = False
            return
        self._decode_q.put_nowait((codec, packet))

    async def _decode_loop(self) -> None:
        assert self._decode_q is not None
        loop = asyncio.get_running_loop()
        while True:
            codec, packet = await self._decode_q.get()
            if (
                self._decoder is None
                or self._decoder_codec is None
                or not same_codec(codec, self._decoder_codec)
            ):
                self._decoder, self._decoder_codec = get_decoder(codec), codec
            frame_in = JitterFrame(bytes(packet), packet.pts if packet.pts is not None else 0)
            try:
                frames = await loop.run_in_executor(None, self._decoder.decode, frame_in)
            except av.FFmpegError as e:
                log.warning("relay: cannot decode %s frame: %s", codec.mimeType, e)
                self._decoder_synced = False
                continue
            self.relay.decoded_frames += len(frames)
            for frame in frames:
                for sub in list(self.subscribers):
                    if not sub.takes_packets(codec):
                        sub._push(frame)

    async def _stop_decoder(self) -> None:
        for task in (self._decode_task, self._pli_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
        self._decoder = None


class ForwardingRelay:
    """``aiortc.contrib.media.MediaRelay``'s shape, forwarding encoded media.

    :meth:`subscribe` returns a new :class:`RelayedTrack` per consumer; one task per
    source reads it (from the first subscriber's first ``recv``) until it ends, even if
    every subscriber stopped (so a receiver's frames never pile up). Counters for the
    benchmark and tests: ``packets_in`` (encoded frames read from tapped sources),
    ``frames_in`` (decoded frames read from untapped sources), ``decoded_frames`` (by the
    fallback), ``decode_dropped``, ``keyframe_requests`` (PLIs sent)."""

    def __init__(self) -> None:
        self._sources: dict[MediaStreamTrack, _Source] = {}
        self.packets_in = 0
        self.frames_in = 0
        self.decoded_frames = 0
        self.decode_dropped = 0
        self.keyframe_requests = 0

    def subscribe(self, track: MediaStreamTrack, buffered: bool = False, mode: Mode = "auto") -> RelayedTrack:
        """A new consumer of ``track``. ``buffered=False``: at most
        :data:`UNBUFFERED_FRAMES` wait, then frames drop (see there); ``True``: every
        frame queues. ``mode``: ``"auto"`` (packets when the carrying sender negotiated
        the source's codec, else frames), ``"encoded"`` (whatever the source yields,
        never decoded), ``"decoded"`` (frames). Raises ``ValueError`` on another mode."""
        if mode not in ("auto", "encoded", "decoded"):
            raise ValueError(f"unknown relay mode {mode!r}")
        source = self._sources.get(track)
        if source is None:
            source = self._sources[track] = _Source(self, track)
        return RelayedTrack(self, source, buffered, mode)

    def last_arrival(self, track: MediaStreamTrack) -> float | None:
        """``loop.time()`` when ``track``'s last frame or packet was read (None: none yet,
        or not relayed)."""
        source = self._sources.get(track)
        return source.last_arrival if source is not None else None

    def _ended(self, source: _Source) -> None:
        if self._sources.get(source.track) is source:
            del self._sources[source.track]

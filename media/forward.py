"""Forward, don't transcode: relay RTP packets (and, where needed, encoded or decoded
frames) between aiortc peers (issue 3; packet level since issue 13 item 1).

aiortc's stock path decodes every received frame (a decoder thread per receiver) and
re-encodes it in every sender: measured ~10 % of a core per one-way Opus stream. An SFU
(mediasoup, LiveKit/pion) does less: it takes each decrypted RTP packet as it arrives and
sends it on each subscriber's stream with that stream's SSRC, sequence number, timestamp
and payload type, re-encrypted; no depacketization, no jitter buffer, no decoding. This
module does that inside aiortc, and keeps frame-level paths for consumers that need them.

**Packets** (the forwarding path). :class:`ReceiverTap` takes each RTP packet the DTLS
transport routes to a receiver (``RTCRtpReceiver._handle_rtp_packet``: decrypted and
parsed), counts it exactly (the per-party traffic), and when no consumer of that source
wants frames does only aiortc's receiver bookkeeping (RTCP statistics for receiver
reports, REMB, NACK generation for video, RTX unwrapping), then hands the media packet
to the relay source. Each RTP subscriber writes it to its sender's
:class:`~media.rtpstream.OutStream` (``media/rtpstream.py``: SSRC/sequence/timestamp/PT
rewriting continuous across source switches, the sender's retransmission history and
counters, so aiortc's own sender reports and ``outbound-rtp`` stats count forwarded
packets), which the sender's DTLS transport encrypts and sends. The sender's own RTP
loop then idles (its track yields nothing); its RTCP loop still sends sender reports.

- NACK (RFC 4585 6.2.1) from a subscriber: answered from the sender's history (aiortc's
  ``_retransmit``, RTX when negotiated); a packet that never reached the bridge is asked
  of the source with its own SSRC and sequence number (``OutStream.upstream``).
- PLI/FIR from a subscriber: the source is asked for a keyframe (RTCP PLI, rate-limited
  to one per :data:`KEYFRAME_MIN_INTERVAL_S`). A new video subscriber drops packets until
  the first packet of a keyframe (:func:`starts_keyframe`), asking for one at once and
  every :data:`KEYFRAME_RETRY_S` while it waits.

**Frames** (fallbacks): a consumer that needs frames makes the tap run aiortc's whole
receive path for that source (jitter buffer restarted fresh), whose complete encoded
frames become ``av.Packet`` (``pts`` in 1/clock rate, ``is_keyframe``); they are decoded
once per source for consumers that want decoded frames. That is: a sender whose codec
differs from the source's (aiortc re-encodes; it numbers those packets itself, so a
stream that switches between a forwarded source and a transcoded one is not continuous),
the recorder (``MediaRecorder``), the visitor snapshot (``media/snapshot.py``, until its
picture), and ``mode="encoded"`` consumers.

Integration (the bridge, or any aiortc process):

1. :func:`enable_forwarding` on each ``RTCPeerConnection`` **before**
   ``setRemoteDescription``: taps its receivers, and makes its senders tell their track
   the codec they negotiated, their :class:`~media.rtpstream.OutStream` once started,
   and the far end's keyframe requests; a NACK for a packet not in a sender's history is
   relayed. A received track that no relay reads yields ``av.Packet`` encoded frames.
2. :class:`ForwardingRelay` in place of ``aiortc.contrib.media.MediaRelay``:
   ``subscribe(track, buffered=False, mode="auto")``, several subscribers per source.
   ``auto``: RTP onto the sender's stream when it negotiated the source's codec (same MIME
   type, clock rate, channels; payload types may differ), encoded frames to a sender that
   told only its codec, decoded frames otherwise (another codec, no sender at all).
   ``encoded``: encoded frames, never decoded; ``decoded``: frames; ``arrivals``: the
   times packets arrive, taking nothing (a drain that watches a party's media).
3. A track that wraps a subscriber (the bridge's ``RoomTrack``, which follows the room's
   talker or a party that re-joins) must pass on the calls of :class:`EncodedSink`:
   ``set_output_codec`` and ``set_output_stream`` (remember them, hand them to each new
   subscriber: one ``OutStream`` per sender keeps its sequence numbers and timestamps
   continuous whichever source feeds it) and ``request_keyframe``. Without them, ``auto``
   falls back to frames: correct, slower.

How ``media/bridge.py`` uses it: ``Room.relay`` = ``ForwardingRelay()``;
``enable_forwarding(pc)`` right after each ``RTCPeerConnection(...)`` in ``Bridge.offer``;
the drain subscribes with ``mode="arrivals"``; ``RoomTrack`` implements
:class:`EncodedSink`; the recorder's ``RoomTrack``\\ s have no sender and get frames.

Private aiortc API used (aiortc 1.16 has no public hook for received packets, encoded
frames or sending prepared RTP): ``RTCRtpReceiver._handle_rtp_packet`` (replaced per
receiver) and the attributes it uses (:data:`_RECEIVER_FIELDS`), the receiver's decoder
queue, ``RemoteStreamTrack._queue``, ``RTCRtpReceiver._send_rtcp_pli`` /
``_send_rtcp_nack`` / ``_send_rtcp``, ``RTCRtpSender._send_keyframe`` / ``_retransmit`` and
its history and counters (``media.rtpstream.SENDER_FIELDS``), ``RTCDtlsTransport._send_rtp``.
:func:`check_aiortc` verifies them by reading aiortc's source (raising
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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

import aiortc
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters
from aiortc.clock import current_datetime
from aiortc.codecs import get_decoder, is_rtx
from aiortc.codecs.base import Decoder
from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx
from av.frame import Frame
from av.packet import Packet

from media.rtpstream import SENDER_FIELDS, OutStream, ntp_now

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

Mode = Literal["auto", "encoded", "decoded", "arrivals"]
Delivery = Literal["rtp", "packets", "frames", "arrivals", "none"]


class ForwardingUnsupported(RuntimeError):
    """The installed aiortc no longer has the private hooks this module relies on."""


class EncodedSink(Protocol):
    """What a track given to an :func:`enable_forwarding` peer's sender may implement
    (:class:`RelayedTrack` does; a wrapper passes each call on to the track it wraps)."""

    def set_output_codec(self, codec: RTCRtpCodecParameters | None) -> None:
        """The codec the sender negotiated (RTP codec parameters; None: unknown)."""
        ...

    def set_output_stream(self, out: OutStream | None) -> None:
        """The sender's RTP stream for forwarded packets (``media.rtpstream.OutStream``),
        once the sender started; one per sender for its whole life, so a wrapper that
        changes sources keeps sequence numbers and timestamps continuous by handing the
        same one to each new subscriber."""
        ...

    def request_keyframe(self) -> None:
        """The far end lost a picture (it sent RTCP PLI or FIR to the sender)."""
        ...


# ---------------------------------------------------------------- aiortc hooks

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_FIELDS = (
    "__codecs",
    "__rtx_ssrc",
    "__remote_streams",
    "__active_ssrc",
    "__nack_generator",
    "__remote_bitrate_estimator",
    "__rtcp_ssrc",
    "__jitter_buffer",
)
"""Private ``RTCRtpReceiver`` attributes :class:`ReceiverTap` reads (``_RTCRtpReceiver`` + name)."""
_HOOKED = "_ringflow_forward"  # marks a hooked receiver, sender or peer connection
_TAP = "_ringflow_tap"  # on a RemoteStreamTrack: its ReceiverTap


_RECEIVER_NEEDS = (
    # (method, text its source must contain): the receive path of _handle_rtp_packet that
    # ReceiverTap._account repeats for packets it forwards without aiortc's jitter buffer
    ("_handle_rtp_packet", "self.__decoder_queue.put((codec, encoded_frame))"),
    ("_handle_rtp_packet", "self.__remote_streams[packet.ssrc].add(packet)"),
    ("_handle_rtp_packet", "self.__active_ssrc[packet.ssrc] = clock.current_datetime()"),
    ("_handle_rtp_packet", "self.__nack_generator.add(packet)"),
    ("_handle_rtp_packet", "self.__remote_bitrate_estimator.add("),
    ("_handle_rtp_packet", "unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)"),
    ("_handle_rtp_packet", "self.__jitter_buffer.add(packet)"),
    ("receive", "self.__decoder_queue"),
    ("receive", "self._track._queue"),
    ("receive", "self.__codecs[codec.payloadType] = codec"),
    ("receive", "self.__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc"),
    ("_run_rtcp", "self.__remote_streams.items()"),
    ("_send_rtcp_nack", "RTCP_RTPFB_NACK"),
)
_SENDER_NEEDS = (
    ("_next_encoded_frame", "self.__encoder.pack(data)"),
    ("_retransmit", "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)"),
    ("_run_rtcp", "packet_count=self.__packet_count"),
    ("_run_rtcp", "octet_count=self.__octet_count"),
    ("_run_rtcp", "rtp_timestamp=self.__rtp_timestamp"),
    ("_handle_rtcp_packet", "await self._retransmit(seq)"),
    ("_handle_rtcp_packet", "self._send_keyframe()"),
    ("getStats", "packetsSent=self.__packet_count"),
)


@functools.cache
def check_aiortc() -> str:
    """Verify that the installed aiortc still has the private paths this module hooks and
    return its version. Raises :class:`ForwardingUnsupported` naming what changed.

    The checks read aiortc's source (:data:`_RECEIVER_NEEDS`, :data:`_SENDER_NEEDS`): the
    receiver's packet handling (statistics, NACK generation, REMB, RTX unwrapping, jitter
    buffer, the decoder queue of ``(codec, encoded_frame)``), its ``receive`` (decoder
    thread on the track's ``_queue``, codecs and RTX SSRCs), ``_send_rtcp_pli``,
    ``_send_rtcp_nack``; the sender's history, counters and sender reports
    (``media.rtpstream.SENDER_FIELDS``), NACK and PLI handling, ``encoder.pack`` of
    non-frames, ``_send_keyframe``; the DTLS transport's ``_send_rtp``. An aiortc version not
    in :data:`TESTED_AIORTC` whose source passes is logged as a warning (and fails
    ``tests/test_media_forward.py``)."""
    try:
        sources: dict[tuple[type, str], str] = {
            (RTCRtpReceiver, name): inspect.getsource(getattr(RTCRtpReceiver, name))
            for name in {n for n, _ in _RECEIVER_NEEDS} | {"__init__"}
        } | {
            (RTCRtpSender, name): inspect.getsource(getattr(RTCRtpSender, name))
            for name in {n for n, _ in _SENDER_NEEDS} | {"__init__"}
        }
        track_init = inspect.getsource(RemoteStreamTrack.__init__)
    except (AttributeError, OSError, TypeError) as e:
        raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: cannot read its source: {e}") from e
    needs = [(RTCRtpReceiver, n, t) for n, t in _RECEIVER_NEEDS] + [
        (RTCRtpSender, n, t) for n, t in _SENDER_NEEDS
    ]
    needs += [(RTCRtpSender, "__init__", "self." + f.removeprefix("_RTCRtpSender")) for f in SENDER_FIELDS]
    needs += [(RTCRtpReceiver, "__init__", f"self.{f}") for f in _RECEIVER_FIELDS]
    changed = missing_source(needs, sources)
    if changed is not None:
        raise ForwardingUnsupported(f"{changed}; media/forward.py must be re-verified against this version")
    hooks: tuple[tuple[type, str], ...] = (
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_send_rtcp_nack"),
        (RTCRtpReceiver, "_send_rtcp"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_retransmit"),
        (RTCDtlsTransport, "_send_rtp"),
    )
    for cls, name in hooks:
        if not callable(getattr(cls, name, None)):
            raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: {cls.__name__}.{name} is gone")
    if "_queue" not in track_init:
        raise ForwardingUnsupported(f"aiortc {aiortc.__version__}: RemoteStreamTrack._queue is gone")
    if aiortc.__version__ not in TESTED_AIORTC:
        log.warning("aiortc %s is not in media.forward.TESTED_AIORTC; hooks verified", aiortc.__version__)
    return aiortc.__version__


def missing_source(
    needs: Iterable[tuple[type, str, str]], sources: dict[tuple[type, str], str] | None = None
) -> str | None:
    """The first of ``needs`` ((class, method name, text its source must contain)) that the
    installed aiortc no longer meets, as a sentence naming the aiortc version, or None when
    all hold. ``sources``: method sources already read ((class, name) -> source). The check
    :func:`check_aiortc` and ``media.peer.check_playout`` make of private aiortc paths."""
    sources = dict(sources or {})
    for cls, name, text in needs:
        if (cls, name) not in sources:
            try:
                sources[(cls, name)] = inspect.getsource(getattr(cls, name))
            except (AttributeError, OSError, TypeError) as e:
                return f"aiortc {aiortc.__version__}: cannot read {cls.__name__}.{name}: {e}"
        if text not in sources[(cls, name)]:
            return f"aiortc {aiortc.__version__}: {cls.__name__}.{name} no longer contains {text!r}"
    return None


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


def starts_keyframe(codec: RTCRtpCodecParameters, payload: bytes) -> bool:
    """Whether the RTP packet ``payload`` (``codec``'s payload format) is the first packet
    of a keyframe, so a video subscriber may start forwarding at it. Audio: always. VP8
    (RFC 7741 section 4.2): the payload descriptor has S = 1 and PID = 0 and the VP8 data
    after it is a keyframe by :func:`is_keyframe`. H.264 (RFC 6184 section 5.6-5.8): the
    NAL units it carries (single, STAP-A, or the start of an FU-A) include an IDR slice.
    A payload that does not parse is not a keyframe. Raises ``ValueError`` for another
    video codec (as :func:`is_keyframe`)."""
    if codec.mimeType.lower().startswith("audio/"):
        return True
    name = codec.name.lower()
    try:
        if name == "vp8":
            descriptor, data = VpxPayloadDescriptor.parse(payload)
            return (
                bool(descriptor.partition_start) and descriptor.partition_id == 0 and is_keyframe(codec, data)
            )
        if name == "h264":
            return is_keyframe(codec, H264PayloadDescriptor.parse(payload)[1])
    except (ValueError, IndexError):
        return False
    raise ValueError(f"no keyframe rule for {codec.mimeType}")


class ReceiverTap:
    """One receiver's packets and encoded frames (see the module docstring for the private API).

    Packets: every RTP packet the receiver's DTLS transport routes to it (decrypted) comes
    here first. Exact counters: ``packets``/``octets`` (media packets and their payload
    bytes, RTX excluded: what the sender counts as ``packetsSent``/``bytesSent``),
    ``rtx_packets``/``rtx_octets`` (retransmissions). With a ``source`` (a
    :class:`ForwardingRelay` source) that wants no frames (:meth:`_Source.wants_frames`), the
    packet gets aiortc's receiver bookkeeping only (:meth:`_account`: REMB, RTCP
    statistics for receiver reports, NACK generation for video), no depacketization and
    no jitter buffer; otherwise aiortc's whole receive path runs. Then the media packet
    (RTX unwrapped, padding-only packets skipped) goes to ``source.forward_rtp``.

    Frames: each complete encoded frame aiortc's jitter buffer yields becomes an
    ``av.Packet`` (``pts`` in ``time_base`` 1/clock rate, starting at 0; ``is_keyframe``)
    put on ``track``'s queue, so ``track.recv()`` returns packets, or handed to ``sink`` when
    one is set (a :class:`ForwardingRelay` source: one task hop less per frame; the track
    then yields nothing but its end). The decoder thread still runs, idle, and still ends
    the track when the receiver stops. ``codec`` is the codec of the last frame or packet;
    ``on_loss`` callbacks run when aiortc itself sends a PLI (it lost picture data)."""

    def __init__(self, receiver: RTCRtpReceiver, track: RemoteStreamTrack) -> None:
        self.receiver = receiver
        self.track = track
        self.kind = track.kind
        self.codec: RTCRtpCodecParameters | None = None
        self.frames = 0
        self.packets = self.octets = self.rtx_packets = self.rtx_octets = 0
        self.on_loss: list[Callable[[], None]] = []
        self.sink: Callable[[RTCRtpCodecParameters, Packet], None] | None = None
        self.source: _Source | None = None
        self._lean = False  # the last packet skipped aiortc's jitter buffer
        self._by_pt: dict[int, tuple[RTCRtpCodecParameters, RTCRtpCodecParameters, bool]] = {}
        self._seen_at: dict[int, int] = {}  # SSRC -> arrival ms when _active was last renewed
        self._media_ssrcs: list[int] = []
        self._rtx_ssrcs: set[int] = set()
        self._pli: Callable[[int], Awaitable[None]] = receiver._send_rtcp_pli
        decoder_queue = getattr(receiver, _DECODER_QUEUE, None)
        if decoder_queue is None:
            raise ForwardingUnsupported("RTCRtpReceiver has no decoder queue")
        private = {name: getattr(receiver, "_RTCRtpReceiver" + name) for name in _RECEIVER_FIELDS}
        self._codecs: dict[int, RTCRtpCodecParameters] = private["__codecs"]
        self._rtx_to_media: dict[int, int] = private["__rtx_ssrc"]
        self._streams: dict[int, StreamStatistics] = private["__remote_streams"]
        self._active: dict[int, Any] = private["__active_ssrc"]
        self._nacks: Any = private["__nack_generator"]
        self._estimator: Any = private["__remote_bitrate_estimator"]
        self._to_decoder = decoder_queue.put
        decoder_queue.put = self._put  # instance attribute: only this receiver
        receiver._send_rtcp_pli = self._aiortc_pli  # type: ignore[method-assign]
        self._receive = receiver.receive
        receiver.receive = self._on_receive  # type: ignore[method-assign]
        self._handle = receiver._handle_rtp_packet
        receiver._handle_rtp_packet = self._on_rtp  # type: ignore[method-assign]
        setattr(track, _TAP, self)

    def _classify(
        self, payload_type: int
    ) -> tuple[RTCRtpCodecParameters, RTCRtpCodecParameters, bool] | None:
        """(codec, media codec, is RTX) of ``payload_type``, None when not negotiated."""
        known = self._by_pt.get(payload_type)
        if known is None:
            codec = self._codecs.get(payload_type)
            if codec is None:
                return None
            rtx = is_rtx(codec)
            media = self._codecs.get(codec.parameters.get("apt"), codec) if rtx else codec  # type: ignore[arg-type]
            known = self._by_pt[payload_type] = (codec, media, rtx)
        return known

    async def _on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        known = self._classify(packet.payload_type)
        if known is None or not self.receiver._enabled:
            await self._handle(packet, arrival_time_ms)  # aiortc drops it (and logs why)
            return
        codec, media_codec, rtx = known
        if rtx:
            self.rtx_packets += 1
            self.rtx_octets += len(packet.payload)
        else:
            self.packets += 1
            self.octets += len(packet.payload)
        source = self.source
        if source is None or source.wants_frames(media_codec):
            if self._lean:  # frames wanted again: restart aiortc's jitter buffer (stale packets)
                self._lean = False
                self._reset_jitter_buffer()
            await self._handle(packet, arrival_time_ms)
            if source is None:
                return
            media = self._unwrap(packet, codec) if rtx else packet
        else:
            self._lean = True
            media = await self._account(packet, codec, rtx, arrival_time_ms)
        if media is not None and media.payload:
            self.codec = media_codec
            try:
                await source.forward_rtp(media_codec, media)
            except Exception:  # never into aiortc's receive loop
                log.exception("relay: forwarding a %s packet failed", media_codec.mimeType)

    def _reset_jitter_buffer(self) -> None:
        """A fresh, empty ``RTCRtpReceiver.__jitter_buffer`` of the same shape: the old one
        holds packets from before the stretch it was not fed, which it would wait on."""
        old = getattr(self.receiver, _JITTER_BUFFER)
        setattr(self.receiver, _JITTER_BUFFER, JitterBuffer(old.capacity, old._prefetch, old._is_video))

    def _unwrap(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> RtpPacket | None:
        """The media packet an RTX ``packet`` carries (RFC 4588), or None (unknown SSRC,
        too short, unknown payload type): as aiortc's receiver does."""
        original_ssrc = self._rtx_to_media.get(packet.ssrc)
        apt = codec.parameters.get("apt")
        if (
            original_ssrc is None
            or len(packet.payload) < 2
            or not isinstance(apt, int)
            or apt not in self._codecs
        ):
            return None
        return unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)

    async def _account(
        self, packet: RtpPacket, codec: RTCRtpCodecParameters, rtx: bool, arrival_time_ms: int
    ) -> RtpPacket | None:
        """aiortc's receiver bookkeeping for ``packet`` without depacketizing it or feeding
        the jitter buffer (``RTCRtpReceiver._handle_rtp_packet`` up to ``depayload``): REMB
        (video), active sources, RTCP statistics (receiver reports, ``inbound-rtp``), RTX
        unwrapping and NACKs for missing packets (video). Returns the media packet. The
        active sources' times (``getSynchronizationSources``, a 10 s window) are renewed
        once a second per source, not per packet."""
        receiver: Any = self.receiver
        if self._estimator is not None and packet.extensions.abs_send_time is not None:
            remb = self._estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None and remb is not None:
                await receiver._send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                )
        seen = self._seen_at.get(packet.ssrc)
        if seen is None or arrival_time_ms - seen >= 1000:
            self._seen_at[packet.ssrc] = arrival_time_ms
            self._active[packet.ssrc] = current_datetime()
        stats = self._streams.get(packet.ssrc)
        if stats is None:
            stats = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        media = self._unwrap(packet, codec) if rtx else packet
        if media is not None and self._nacks is not None and self._nacks.add(media):
            await receiver._send_rtcp_nack(media.ssrc, sorted(self._nacks.missing))
        return media

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        """Ask the sender for ``lost`` packets of ``media_ssrc`` again (RTCP NACK, RFC 4585
        section 6.2.1)."""
        await self.receiver._send_rtcp_nack(media_ssrc, lost)

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


def _bind(track: MediaStreamTrack | None, codec: RTCRtpCodecParameters | None, out: OutStream | None) -> None:
    set_codec = getattr(track, "set_output_codec", None)
    if callable(set_codec):
        set_codec(codec)
    set_stream = getattr(track, "set_output_stream", None)
    if callable(set_stream):
        set_stream(out)


def _hook_sender(sender: RTCRtpSender) -> None:
    """Tell the sender's track its negotiated codec and, once the sender started, its
    :class:`~media.rtpstream.OutStream` (at ``send`` and ``replaceTrack``); pass PLI/FIR
    from the far end to the track's ``request_keyframe``; answer a NACK from the sender's
    history, or relay it to the source of a forwarded packet that never reached the bridge."""
    state: dict[str, Any] = {"codec": None, "out": None}
    send, replace, keyframe, retransmit = (
        sender.send,
        sender.replaceTrack,
        sender._send_keyframe,
        sender._retransmit,
    )

    async def hooked_send(parameters: Any) -> None:
        codec = parameters.codecs[0] if parameters.codecs else None
        state["codec"] = codec
        _bind(sender.track, codec, None)
        await send(parameters)
        if codec is not None and not is_rtx(codec):
            state["out"] = OutStream(sender, codec)
            _bind(sender.track, codec, state["out"])

    def hooked_replace(track: MediaStreamTrack | None) -> None:
        replace(track)
        if state["codec"] is not None:
            _bind(track, state["codec"], state["out"])

    def hooked_keyframe() -> None:
        keyframe()  # a decoded subscriber's encoder makes one
        request = getattr(sender.track, "request_keyframe", None)
        if callable(request):
            request()

    async def hooked_retransmit(sequence_number: int) -> None:
        out: OutStream | None = state["out"]
        if out is None or out.in_history(sequence_number):
            await retransmit(sequence_number)
            return
        upstream = out.upstream(sequence_number)
        if upstream is not None:
            source, ssrc, original = upstream
            if isinstance(source, _Source):
                await source.nack(ssrc, original)

    sender.send = hooked_send  # type: ignore[method-assign]
    sender.replaceTrack = hooked_replace  # type: ignore[method-assign]
    sender._send_keyframe = hooked_keyframe  # type: ignore[method-assign]
    sender._retransmit = hooked_retransmit  # type: ignore[method-assign]


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

    What it is given depends on ``mode`` and on what its sender negotiated
    (:meth:`delivery`): ``"rtp"``, the source's RTP packets are rewritten onto its
    sender's :class:`~media.rtpstream.OutStream` as they arrive (``recv()`` then returns
    nothing until the source ends or the codecs stop matching); ``"packets"``,
    ``recv()`` returns ``av.Packet`` encoded frames; ``"frames"``, decoded ``av.Frame``;
    ``"arrivals"``, ``recv()`` returns the loop time of the latest packet that arrived since
    the previous call (a drain: notes arrival without taking anything). ``recv()`` raises
    ``MediaStreamError`` once the source ended or after ``stop()``. Counters: ``forwarded``
    (RTP packets sent or encoded frames queued), ``decoded`` frames, ``dropped`` (slow
    subscriber, or waiting for a keyframe), ``keyframe_waits``."""

    def __init__(self, relay: ForwardingRelay, source: _Source, buffered: bool, mode: Mode) -> None:
        super().__init__()
        self.kind = source.track.kind
        self.mode: Mode = mode
        self.output_codec: RTCRtpCodecParameters | None = None
        self.output: OutStream | None = None
        self.forwarded = 0
        self.decoded = 0
        self.dropped = 0
        self.keyframe_waits = 0
        self._source: _Source | None = source
        self._limit = None if buffered else UNBUFFERED_FRAMES
        self._items: collections.deque[Packet | Frame | float | None] = collections.deque()
        self._ready = asyncio.Event()
        self._started = False
        self._need_keyframe = self.kind == "video"
        self._matches: dict[int, bool] = {}  # id(source codec) -> same_codec(it, output's)

    def set_output_codec(self, codec: RTCRtpCodecParameters | None) -> None:
        if codec is not None and self.output_codec is not None and same_codec(codec, self.output_codec):
            return
        self.output_codec = codec
        self._restart()
        if self._source is not None:
            self._source.changed()

    def set_output_stream(self, out: OutStream | None) -> None:
        if out is self.output:
            return
        previous, self.output = self.output, out
        self._matches.clear()
        if self._started and out is not None:
            self._claim(out)
        if previous is not None and previous.owner is self:
            previous.owner = None
        self._restart()
        if self._source is not None:
            self._source.changed()

    def _claim(self, out: OutStream) -> None:
        """Become the subscriber that writes to ``out`` (the one it wrote for stops)."""
        owner = out.owner
        if isinstance(owner, RelayedTrack) and owner is not self and owner._source is not None:
            owner._source.changed()
        out.owner = self

    def _restart(self) -> None:
        """The output changed: forwarded video starts again at a keyframe."""
        self._need_keyframe = self.kind == "video"
        if self._started and self._source is not None:
            self._source.keyframe_wanted(urgent=True)

    def request_keyframe(self) -> None:
        if self._source is not None and self.delivery(self._source.codec) in ("rtp", "packets"):
            self._source.keyframe_wanted(urgent=True)

    def rtp_output(self, codec: RTCRtpCodecParameters) -> OutStream | None:
        """The stream to forward the source's ``codec`` RTP packets to, if this subscriber
        takes them: ``auto`` mode, its sender started (it owns the sender's
        :class:`~media.rtpstream.OutStream`) and negotiated the same codec."""
        out = self.output
        if out is None or out.owner is not self or self.mode != "auto":
            return None
        return out if self._same(codec, out.codec) else None

    def delivery(self, codec: RTCRtpCodecParameters | None) -> Delivery:
        """How this subscriber takes the source's media sent as ``codec`` (None: not known
        yet): see the class docstring; ``"none"`` for a subscriber replaced on its stream."""
        if self.mode != "auto":
            return {"encoded": "packets", "decoded": "frames", "arrivals": "arrivals"}[self.mode]  # type: ignore[return-value]
        out = self.output
        if out is not None:
            if out.owner is not None and out.owner is not self:
                return "none"
            if codec is None or self._same(codec, out.codec):
                return "rtp"
        if codec is not None and self.output_codec is not None and same_codec(codec, self.output_codec):
            return "packets"
        return "frames"

    def _same(self, codec: RTCRtpCodecParameters, output: RTCRtpCodecParameters) -> bool:
        same = self._matches.get(id(codec))
        if same is None:
            same = self._matches[id(codec)] = same_codec(codec, output)
        return same

    def takes_packets(self, codec: RTCRtpCodecParameters | None) -> bool:
        """Whether this subscriber is given the source's encoded frames (``av.Packet``) when
        it sends ``codec``."""
        return self.delivery(codec) == "packets"

    @property
    def waits_for_keyframe(self) -> bool:
        return self._need_keyframe

    def _arrived(self, now: float) -> None:
        """An ``arrivals`` subscriber: a packet arrived at loop time ``now``."""
        if self._items and self._items[-1] is not None:
            self._items[-1] = now
        else:
            self._items.append(now)
        self._ready.set()

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
        """The source lost picture data: forwarded frames resume at the next keyframe (an
        RTP subscriber recovers by NACK and the far end's own PLI instead)."""
        if self.kind == "video" and not self._need_keyframe:
            self._need_keyframe = True
            self.keyframe_waits += 1

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started and self._source is not None:
            self._started = True
            if self.output is not None:
                self._claim(self.output)
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
        if self.output is not None and self.output.owner is self:
            self.output.owner = None
        if self._source is not None:
            self._source.remove(self)
            self._source = None
        self._ready.set()


class _Source:
    """A relayed source track: forwards its RTP packets to RTP subscribers as they arrive
    (:meth:`forward_rtp`), reads its encoded frames once while a subscriber wants frames,
    fans them out, and decodes (fallback) while a started subscriber wants decoded frames."""

    def __init__(self, relay: ForwardingRelay, track: MediaStreamTrack) -> None:
        self.relay = relay
        self.track = track
        self.subscribers: list[RelayedTrack] = []
        self.task: asyncio.Task[None] | None = None
        self.codec: RTCRtpCodecParameters | None = None
        self.tap = tap_of(track)
        self.last_arrival: float | None = None  # loop.time() of the last frame or packet
        self.keyframe_requests = 0
        self._wants: dict[int, bool] = {}  # id(codec) -> wants_frames(codec)
        self._loop = asyncio.get_running_loop()
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
            self.tap.source = self

    def wants_frames(self, codec: RTCRtpCodecParameters) -> bool:
        """Whether a started subscriber takes encoded or decoded frames of ``codec`` media
        (then aiortc's jitter buffer must run for this source). Kept per codec until the
        subscribers or their outputs change (:meth:`changed`)."""
        wants = self._wants.get(id(codec))
        if wants is None:
            wants = self._wants[id(codec)] = any(
                sub.delivery(codec) in ("packets", "frames") for sub in self.subscribers
            )
        return wants

    def changed(self) -> None:
        """A subscriber started, stopped, or its output changed: decide again."""
        self._wants.clear()

    async def forward_rtp(self, codec: RTCRtpCodecParameters, packet: RtpPacket) -> None:
        """A media packet arrived (decrypted, RTX unwrapped): note it for ``arrivals``
        subscribers and send it on each RTP subscriber's stream; a video subscriber that
        waits for a keyframe starts at the first packet of one (:func:`starts_keyframe`)."""
        now = self._loop.time()
        ntp = ntp_now()
        self.last_arrival = now
        self.codec = codec
        relay = self.relay
        relay.rtp_in += 1
        waiting = False
        for sub in tuple(self.subscribers):
            if sub.mode == "arrivals":
                sub._arrived(now)
                continue
            out = sub.rtp_output(codec)
            if out is None:
                continue
            if sub._need_keyframe:
                if not starts_keyframe(codec, packet.payload):
                    sub.dropped += 1
                    waiting = True
                    continue
                sub._need_keyframe = False
            if await out.forward(self, packet, now, ntp):
                sub.forwarded += 1
                relay.rtp_forwarded += 1
        if waiting:
            self.keyframe_wanted()

    async def nack(self, ssrc: int, sequence_number: int) -> None:
        """Relay a subscriber's NACK of a packet that never reached the bridge to this
        source's sender (its SSRC and sequence number)."""
        if self.tap is not None:
            self.relay.nacks_relayed += 1
            await self.tap.nack(ssrc, [sequence_number])

    def _on_packet(self, codec: RTCRtpCodecParameters, packet: Packet) -> None:
        self.last_arrival = self._loop.time()
        self._packet(codec, packet)

    def start(self, sub: RelayedTrack) -> None:
        self.changed()
        if sub not in self.subscribers:
            self.subscribers.append(sub)
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        if sub.waits_for_keyframe and sub.delivery(self.codec) in ("rtp", "packets"):
            self.keyframe_wanted(urgent=True)

    def remove(self, sub: RelayedTrack) -> None:
        self.changed()
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
                        if sub.mode == "arrivals":
                            sub._arrived(self.last_arrival)
                        else:
                            sub._push(item)
        finally:
            for sub in list(self.subscribers):
                sub._push(None)
            self.subscribers.clear()
            await self._stop_decoder()
            if self.tap is not None:
                self.tap.sink = None
                self.tap.source = None
                self.tap.on_loss.remove(self._on_loss)
            self.relay._ended(self)

    def _packet(self, codec: RTCRtpCodecParameters, packet: Packet) -> None:
        self.codec = codec
        self.relay.packets_in += 1
        if self._lost:  # aiortc lost picture data (and sent a PLI itself)
            self._lost = False
            self._decoder_synced = False
            for sub in self.subscribers:
                if sub.delivery(codec) == "packets":
                    sub._lost()
        wants_frames = waiting = False
        for sub in list(self.subscribers):
            how = sub.delivery(codec)
            if how == "packets":
                sub._push(packet)
                waiting = waiting or sub.waits_for_keyframe
            elif how == "frames":
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
                    if sub.delivery(codec) == "frames":
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
    benchmark and tests: ``rtp_in`` (media RTP packets of tapped sources),
    ``rtp_forwarded`` (RTP packets sent on subscribers' streams), ``nacks_relayed``
    (sequence numbers asked of a source for a subscriber), ``packets_in`` (encoded frames
    read from tapped sources: only while a subscriber wants frames), ``frames_in``
    (decoded frames read from untapped sources), ``decoded_frames`` (by the fallback),
    ``decode_dropped``, ``keyframe_requests`` (PLIs sent)."""

    def __init__(self) -> None:
        self._sources: dict[MediaStreamTrack, _Source] = {}
        self.rtp_in = 0
        self.rtp_forwarded = 0
        self.nacks_relayed = 0
        self.packets_in = 0
        self.frames_in = 0
        self.decoded_frames = 0
        self.decode_dropped = 0
        self.keyframe_requests = 0

    def subscribe(self, track: MediaStreamTrack, buffered: bool = False, mode: Mode = "auto") -> RelayedTrack:
        """A new consumer of ``track``. ``buffered=False``: at most
        :data:`UNBUFFERED_FRAMES` wait, then frames drop (see there); ``True``: every
        frame queues. ``mode``: ``"auto"`` (RTP packets onto the carrying sender's stream
        when it negotiated the source's codec, encoded frames to a sender that only told
        its codec, else decoded frames), ``"encoded"`` (encoded frames, never decoded),
        ``"decoded"`` (frames), ``"arrivals"`` (packet arrival times: a drain); see
        :class:`RelayedTrack`. Raises ``ValueError`` on another mode."""
        if mode not in ("auto", "encoded", "decoded", "arrivals"):
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

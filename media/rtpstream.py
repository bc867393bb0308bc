"""One outgoing RTP stream of forwarded packets: header rewriting, retransmission history
and counters (issue 13 item 1, "a leaner forwarding path").

An SFU forwards a received RTP packet to each subscriber with the subscriber's own SSRC,
sequence number, timestamp and payload type, and keeps those continuous when the source
behind the stream changes; this is mediasoup's ``RtpStreamSend`` + ``SeqManager`` and
LiveKit's ``DownTrack`` + ``RTPMunger``. :class:`OutStream` is that state for one aiortc
``RTCRtpSender`` (created by ``media/forward.py`` once the sender negotiated its codec):

- **sequence numbers**: ``out = in + offset`` (mod 2^16) per source; when the source
  changes (another track, or another SSRC on the same track) the offset is chosen so the
  first packet of the new source gets ``last sent + 1``. A packet of the current source
  older than its first forwarded one is dropped (its number would fall before the switch);
  RFC 3550 section 5.1.
- **timestamps**: ``out = in + offset`` (mod 2^32) per source; at a switch the new
  source's first packet gets ``last sent + elapsed wall time x clock rate`` (at least 1),
  so the stream's timestamps advance as real time did and never go back (RFC 3550
  section 5.1: "the timestamp ... must increase monotonically and linearly in time").
- **payload type**: the sender's negotiated one (the legs may number the same codec
  differently; ``media.forward.same_codec`` decides what "same" means).
- **header extensions**: the sender's ``mid`` (RFC 8843), a fresh ``abs-send-time``; the
  source's ``ssrc-audio-level`` (RFC 6464) is kept; others (transport-wide sequence
  numbers of the source's leg) are dropped.
- the rewritten packet goes into the **sender's own retransmission history**
  (``RTCRtpSender.__rtp_history``, ``RTP_HISTORY_SIZE`` packets), so a NACK from the
  subscriber is answered by aiortc's ``_retransmit`` (RTX when negotiated);
  :meth:`OutStream.upstream` maps a sequence number that is not there back to the source's
  for relaying the NACK (``media/forward.py`` hooks ``_retransmit``).
- **counters**: the sender's packet and octet counts, last RTP timestamp and its NTP time
  (``RTCRtpSender.__packet_count``, ``__octet_count``, ``__rtp_timestamp``,
  ``__ntp_timestamp``) are advanced per forwarded packet, so the RTCP sender reports aiortc
  sends for this SSRC and its ``outbound-rtp`` stats count the forwarded packets (RFC 3550
  section 6.4.1: payload octets, headers and padding excluded).

The packet is encrypted and sent by the sender's DTLS transport (``_send_rtp``: SRTP
protect, ICE send). Private aiortc API: the sender attributes named above, checked by
:func:`check_sender` (``media.forward.check_aiortc`` calls it). Runs on the event loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiortc import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.utils import random32, uint16_gt, uint32_gt

log = logging.getLogger(__name__)

SENDER_FIELDS = (
    "_RTCRtpSender__mid",
    "_RTCRtpSender__rtp_header_extensions_map",
    "_RTCRtpSender__rtp_history",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__ntp_timestamp",
)
"""The private ``RTCRtpSender`` attributes :class:`OutStream` reads and advances."""


def check_sender(sender: RTCRtpSender) -> str | None:
    """What :class:`OutStream` needs and ``sender`` lacks (None: nothing)."""
    for name in SENDER_FIELDS:
        if not hasattr(sender, name):
            return f"RTCRtpSender.{name} is gone"
    return None


NTP_UNIX_OFFSET_S = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (RFC 5905 section 6)."""


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (32.32 fixed point, RFC 3550 section 4), as
    ``aiortc.clock.current_ntp_time`` but from ``time.time()`` (no datetime per packet)."""
    return int((time.time() + NTP_UNIX_OFFSET_S) * 4294967296.0)


class OutStream:
    """The forwarded RTP stream of one started ``sender`` sending ``codec`` (see the module
    docstring). ``owner``: the subscriber allowed to write to it now (the newest one, so a
    replaced subscriber cannot interleave). Counters: ``packets``, ``octets`` (payload
    bytes), ``switches`` (source changes), ``dropped_old`` (packets from before a switch),
    ``send_errors`` (transport not connected)."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self.sender: Any = sender
        self.codec = codec
        self.kind = sender.kind
        self.ssrc = sender._ssrc
        self.payload_type = codec.payloadType or 0
        self.clock_rate = codec.clockRate
        self.owner: object | None = None
        self.packets = self.octets = self.switches = self.dropped_old = self.send_errors = 0
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self._extensions = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._history: dict[int, RtpPacket] = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
        self._source: object | None = None  # the source forwarded now
        self._source_ssrc: int | None = None
        self._base_seq = 0  # the current source's first forwarded sequence number
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None  # highest sequence number sent
        self._last_ts = random32()  # highest timestamp sent (the first one: random, RFC 3550 5.1)
        self._last_at: float | None = None  # loop time of the last packet sent

    def _rebase(self, source: object, packet: RtpPacket, now: float) -> None:
        """``packet`` is the first of a new source (or SSRC): continue from what was sent."""
        if self._last_seq is None:
            next_seq = random32() % 32768  # as aiortc's senders: no wrap-around early on
        else:
            next_seq = (self._last_seq + 1) & 0xFFFF
            self.switches += 1
        step = 1 if self._last_at is None else max(1, round((now - self._last_at) * self.clock_rate))
        next_ts = (self._last_ts + step) & 0xFFFFFFFF
        self._source, self._source_ssrc = source, packet.ssrc
        self._base_seq = packet.sequence_number
        self._seq_offset = (next_seq - packet.sequence_number) & 0xFFFF
        self._ts_offset = (next_ts - packet.timestamp) & 0xFFFFFFFF

    def current(self, source: object) -> bool:
        """Whether ``source`` is the one this stream forwards now."""
        return self._source is source

    async def forward(self, source: object, packet: RtpPacket, now: float, ntp: int | None = None) -> bool:
        """Send ``packet`` of ``source`` (a received, decrypted, RTX-unwrapped media packet)
        rewritten for this stream; ``now``: loop time; ``ntp``: the wall clock as
        :func:`ntp_now` (taken once per received packet for all its subscribers). False when
        dropped (from before the source's first forwarded packet, or the transport is not
        connected)."""
        if source is not self._source or packet.ssrc != self._source_ssrc:
            self._rebase(source, packet, now)
        elif uint16_gt(self._base_seq, packet.sequence_number):
            self.dropped_old += 1
            return False
        seq = (packet.sequence_number + self._seq_offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        out = RtpPacket(
            payload_type=self.payload_type,
            marker=packet.marker,
            sequence_number=seq,
            timestamp=ts,
            ssrc=self.ssrc,
            payload=packet.payload,
        )
        if ntp is None:
            ntp = ntp_now()
        ext = out.extensions
        ext.mid = self._mid
        ext.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        ext.audio_level = packet.extensions.audio_level
        self._history[seq % RTP_HISTORY_SIZE] = out
        try:
            await self.sender.transport._send_rtp(out.serialize(self._extensions))
        except ConnectionError:
            self.send_errors += 1
            return False
        if self._last_seq is None or uint16_gt(seq, self._last_seq):
            self._last_seq = seq
        if uint32_gt(ts, self._last_ts) or self.packets == 0:
            self._last_ts = ts
        self._last_at = now
        self.packets += 1
        self.octets += len(packet.payload)
        sender = self.sender
        sender._RTCRtpSender__packet_count += 1
        sender._RTCRtpSender__octet_count += len(packet.payload)
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__ntp_timestamp = ntp
        return True

    def in_history(self, seq: int) -> bool:
        """Whether outgoing packet ``seq`` is still in the sender's retransmission history."""
        packet = self._history.get(seq % RTP_HISTORY_SIZE)
        return packet is not None and packet.sequence_number == seq

    def upstream(self, seq: int) -> tuple[object, int, int] | None:
        """The (source, source SSRC, source sequence number) of outgoing ``seq`` of the
        current source; None when it falls before that source's first forwarded packet
        (another source's, or never forwarded)."""
        if self._source is None or self._source_ssrc is None:
            return None
        original = (seq - self._seq_offset) & 0xFFFF
        if uint16_gt(self._base_seq, original):
            return None
        return self._source, self._source_ssrc, original

"""The media bridge's Prometheus metrics (``GET /metrics`` of ``media/server.py``), read from the
bridge's own state and RTC stats when scraped: no bookkeeping beside the bridge's.
docs/metrics.md is the contract of names, types and labels.

:class:`BridgeCollector` is a ``prometheus_client`` collector. Reading a peer's RTC stats is
a coroutine (``RTCPeerConnection.getStats``), a collector's ``collect()`` is not, so the
endpoint awaits :meth:`BridgeCollector.refresh` first and ``collect()`` reports what it read:

- rooms and peers: ``len(bridge.rooms)`` and their peer connections (any state);
- bytes and packets, in (parties -> bridge) and out (bridge -> parties): the rooms' traffic
  as ``Bridge.stats`` / ``Bridge.closed`` count it (RTP payload bytes and RTP packets,
  exact: counted per packet by the receiver taps and aiortc's sender counters,
  ``media/bridge.py`` ``peer_traffic``); a closed room's final traffic is added once, from
  ``Bridge.closed`` (which keeps the last ``CLOSED_ROOMS_KEPT``: more rooms closing between
  two scrapes than that are not counted);
- packets lost, jitter and round-trip time: the connected peers' RTP stream stats (RFC
  3550 via aiortc): ``inbound-rtp`` is what the bridge measured on a party's media,
  ``remote-inbound-rtp`` what the party reported (RTCP receiver reports) of the bridge's.
  Lost packets of a peer count up to the last scrape before it closed;
- bitrate, in and out: the byte counters' increase over the time since the previous
  scrape, bits per second (0 at the first scrape).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from media.bridge import Bridge, Peer
from ringflow.contracts.media import RoomStats

log = logging.getLogger(__name__)

disable_created_metrics()  # no ``*_created`` series (docs/metrics.md lists what is scraped)

CLOCK_RATES = {"audio": 48_000, "video": 90_000}
"""RTP clock rate by kind when the negotiated codec's is unknown (Opus; every video codec),
Hz: aiortc reports jitter in RTP timestamp units."""


@dataclass
class _PeerSample:
    lost: int = 0
    jitter_s: float = 0.0
    rtt_s: float | None = None


@dataclass(frozen=True)
class _Traffic:
    """A room's traffic summed over its parties: RTP payload bytes and packets each way."""

    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0

    def __add__(self, other: _Traffic) -> _Traffic:
        return _Traffic(
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
            self.packets_in + other.packets_in,
            self.packets_out + other.packets_out,
        )

    def at_least(self, other: _Traffic) -> _Traffic:
        """Field by field the larger (counters never go back)."""
        return _Traffic(
            max(self.bytes_in, other.bytes_in),
            max(self.bytes_out, other.bytes_out),
            max(self.packets_in, other.packets_in),
            max(self.packets_out, other.packets_out),
        )


def _traffic(stats: RoomStats) -> _Traffic:
    """A room's traffic (:class:`_Traffic`)."""
    return _Traffic(
        sum(p.bytes_received for p in stats.parties),
        sum(p.bytes_sent for p in stats.parties),
        sum(p.packets_received for p in stats.parties),
        sum(p.packets_sent for p in stats.parties),
    )


def _clock_rates(peer: Peer) -> dict[str, int]:
    """The negotiated codec's clock rate per kind (aiortc keeps a transceiver's negotiated
    codecs in ``_codecs``; :data:`CLOCK_RATES` when it is not there)."""
    rates = dict(CLOCK_RATES)
    for transceiver in peer.pc.getTransceivers():
        codecs = getattr(transceiver, "_codecs", None) or []
        if codecs and getattr(codecs[0], "clockRate", None):
            rates[transceiver.kind] = int(codecs[0].clockRate)
    return rates


async def _peer_sample(peer: Peer) -> _PeerSample:
    """Packets lost (both directions), the worst jitter (seconds) and the round-trip time
    (seconds, None before the first receiver report) of ``peer``'s RTP streams."""
    sample = _PeerSample()
    try:
        report = await peer.pc.getStats()
    except Exception:  # a connection torn down under us has nothing more to tell
        return sample
    rates = _clock_rates(peer)
    for stats in report.values():
        if stats.type not in ("inbound-rtp", "remote-inbound-rtp"):
            continue
        sample.lost += max(int(stats.packetsLost or 0), 0)
        rate = rates.get(getattr(stats, "kind", ""), 0)
        if rate and stats.jitter:
            sample.jitter_s = max(sample.jitter_s, stats.jitter / rate)
        rtt = getattr(stats, "roundTripTime", None)
        if rtt is not None:
            sample.rtt_s = max(sample.rtt_s or 0.0, float(rtt))
    return sample


class BridgeCollector(Collector):
    """The metrics of one :class:`~media.bridge.Bridge` (see the module docstring).

    ``bridge``: a callable returning the bridge (it is made in the app's lifespan, after
    this collector is registered). ``clock``: seconds, monotonic (tests may inject one).
    """

    def __init__(self, bridge: Callable[[], Bridge], clock: Callable[[], float] | None = None) -> None:
        self._bridge = bridge
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._live: dict[str, _Traffic] = {}  # by call id: a live room's traffic now
        self._folded: dict[int, RoomStats] = {}  # closed rooms' final stats already counted
        self._closed = _Traffic()  # traffic of closed rooms
        self._peers: dict[Peer, _PeerSample] = {}  # connected peers' latest sample
        self._retired_lost = 0  # lost packets of peers gone since
        self._rooms = self._peer_count = 0
        self._counted = _Traffic()  # counters as last reported (never decrease)
        self._bitrate = (0.0, 0.0)
        self._last_at: float | None = None

    async def refresh(self) -> None:
        """Read the bridge's rooms, their traffic and their peers' RTC stats (awaits each
        peer's ``getStats``)."""
        bridge = self._bridge()
        live: dict[str, _Traffic] = {}
        peers: dict[Peer, _PeerSample] = {}
        for call_id, room in list(bridge.rooms.items()):
            stats = await bridge.stats(call_id)
            if stats is not None and bridge.rooms.get(call_id) is room:
                live[call_id] = _traffic(stats)
            for peer in list(room.peers.values()):
                if not peer.ended and peer.pc.connectionState == "connected":
                    peers[peer] = await _peer_sample(peer)
        # closed rooms: each final stats once (kept by identity while the bridge keeps it)
        kept = {id(s): s for s in bridge.closed.values()}
        for key, stats in kept.items():
            if key not in self._folded:
                self._closed += _traffic(stats)
        self._folded = kept
        for peer, sample in self._peers.items():
            if peer not in peers:
                self._retired_lost += sample.lost
        self._live, self._peers = live, peers
        self._rooms = len(bridge.rooms)
        self._peer_count = sum(len(r.peers) for r in bridge.rooms.values())
        total = sum(live.values(), self._closed)
        # a room closed and reopened between two scrapes can make the sum dip: never go back
        now = total.at_least(self._counted)
        at = self._clock()
        if self._last_at is not None and at > self._last_at:
            elapsed = at - self._last_at
            self._bitrate = (
                (now.bytes_in - self._counted.bytes_in) * 8 / elapsed,
                (now.bytes_out - self._counted.bytes_out) * 8 / elapsed,
            )
        self._counted, self._last_at = now, at

    def describe(self) -> Iterable[Any]:
        """No samples at registration (the bridge may not exist yet)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families as of the last :meth:`refresh`."""
        yield GaugeMetricFamily("ringflow_media_rooms", "Media rooms open", value=self._rooms)
        yield GaugeMetricFamily(
            "ringflow_media_peers", "Peer connections in the bridge's rooms", value=self._peer_count
        )
        traffic = CounterMetricFamily(
            "ringflow_media_bytes",
            "RTP payload bytes, in (parties -> bridge) and out (bridge -> parties), counted per packet",
            labels=["direction"],
        )
        traffic.add_metric(["in"], self._counted.bytes_in)
        traffic.add_metric(["out"], self._counted.bytes_out)
        yield traffic
        packets = CounterMetricFamily(
            "ringflow_media_packets",
            "RTP packets, in (parties -> bridge, retransmissions excluded) and out (bridge -> parties)",
            labels=["direction"],
        )
        packets.add_metric(["in"], self._counted.packets_in)
        packets.add_metric(["out"], self._counted.packets_out)
        yield packets
        lost = self._retired_lost + sum(s.lost for s in self._peers.values())
        yield CounterMetricFamily(
            "ringflow_media_packets_lost",
            "RTP packets lost, both directions (bridge-measured and party-reported)",
            value=lost,
        )
        yield GaugeMetricFamily(
            "ringflow_media_jitter_seconds",
            "Largest RTP interarrival jitter over connected peers, seconds",
            value=max((s.jitter_s for s in self._peers.values()), default=0.0),
        )
        yield GaugeMetricFamily(
            "ringflow_media_rtt_seconds",
            "Largest round-trip time over connected peers (RTCP), seconds",
            value=max((s.rtt_s for s in self._peers.values() if s.rtt_s is not None), default=0.0),
        )
        bitrate = GaugeMetricFamily(
            "ringflow_media_bitrate_bits_per_second",
            "RTP payload bitrate since the previous scrape, in and out, bits per second",
            labels=["direction"],
        )
        bitrate.add_metric(["in"], self._bitrate[0])
        bitrate.add_metric(["out"], self._bitrate[1])
        yield bitrate


class BridgeMetrics:
    """The bridge process's registry: :class:`BridgeCollector` for ``bridge`` (a callable
    returning the bridge), in its own ``CollectorRegistry``."""

    def __init__(self, bridge: Callable[[], Bridge]) -> None:
        self.registry = CollectorRegistry()
        self.collector = BridgeCollector(bridge)
        self.registry.register(self.collector)
        self._lock = asyncio.Lock()  # one refresh at a time (two scrapes at once)

    async def exposition(self) -> bytes:
        """Refresh from the bridge, then every metric in the Prometheus text format."""
        async with self._lock:
            await self.collector.refresh()
            return generate_latest(self.registry)

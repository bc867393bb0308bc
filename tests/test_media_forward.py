"""``media.forward``: encoded frames relayed between real aiortc peers on 127.0.0.1.

A minimal bridge built here (one ``RTCPeerConnection`` per client, ``enable_forwarding``
on each, a ``ForwardingRelay``) carries a tone (``media.peer.ToneTrack``, Opus) and a
640x480 pattern (``bench.media_relay.PatternTrack``, VP8) between decoding aiortc
clients: what arrives decodes to the tone's amplitude and the pattern's size and luma,
while the bridge decodes nothing. A late video subscriber gets a keyframe (PLI to the
sender: aiortc's VP8 encoder would otherwise send its next one after 3,000 frames),
mismatched codecs (PCMU vs Opus) fall back to decoding, and a recorder gets frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiortc
import av
import pytest
import pytest_asyncio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import CODECS, depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.packet import Packet

from bench.media_relay import (
    BRIGHT,
    DARK,
    VIDEO_HEIGHT,
    VIDEO_WIDTH,
    PatternTrack,
    encode_video_loop,
    luma_at,
    pattern_frame,
)
from media.forward import (
    TESTED_AIORTC,
    UNBUFFERED_FRAMES,
    ForwardingRelay,
    RelayedTrack,
    check_aiortc,
    enable_forwarding,
    is_keyframe,
    same_codec,
    starts_keyframe,
    tap_of,
)
from media.network import MediaNetwork
from media.peer import ToneTrack, peak
from tests.fakes import until

AMPLITUDE = 0.5
TONE_PEAK = AMPLITUDE * 32767
"""Sample peak of the generated tone. aiortc decodes it at 0.77-0.80 of this peer to peer
(no bridge; measured: Opus ``voip`` at 96 kbit/s, mono upmixed to stereo), so a relay
that keeps it within 0.7-1.05 of it passes the tone through intact."""


def tone_intact(peaks: list[int]) -> bool:
    """Whether the steady-state peak of decoded tone frames is the tone's (see TONE_PEAK)."""
    return 0.7 * TONE_PEAK <= statistics.median(peaks[10:]) <= 1.05 * TONE_PEAK


@pytest.fixture(autouse=True)
def loopback() -> None:
    MediaNetwork().install()  # gather on 127.0.0.1 only; no STUN (iceServers=[] below)


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


@dataclass
class Heard:
    """What a client decoded on one received track."""

    kind: str
    audio_peaks: list[int] = field(default_factory=list)
    video: list[tuple[int, int, int, int]] = field(default_factory=list)  # w, h, left luma, right luma


class Client:
    """A decoding aiortc client: sends ``tracks``, receives ``recv_kinds`` it does not send
    too, keeps what it decoded. ``codecs``: per kind, the only MIME type it offers."""

    def __init__(
        self,
        tracks: list[MediaStreamTrack],
        recv_kinds: tuple[str, ...] = (),
        codecs: dict[str, str] | None = None,
    ) -> None:
        self.pc = new_pc()
        self.tracks = tracks
        for track in tracks:
            self.pc.addTrack(track)
        for kind in recv_kinds:
            self.pc.addTransceiver(kind, direction="recvonly")
        for transceiver in self.pc.getTransceivers():
            mime = (codecs or {}).get(transceiver.kind)
            if mime is not None:
                caps = RTCRtpSender.getCapabilities(transceiver.kind).codecs
                transceiver.setCodecPreferences([c for c in caps if c.mimeType == mime])
        self.heard: dict[str, Heard] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", lambda t: self._tasks.append(asyncio.ensure_future(self._read(t))))

    async def _read(self, track: MediaStreamTrack) -> None:
        got = self.heard.setdefault(track.kind, Heard(track.kind))
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    assert frame.format.name == "s16", frame.format.name  # aiortc's Opus and G.711 decoders
                    got.audio_peaks.append(peak(frame))
                elif isinstance(frame, VideoFrame):
                    f = frame.reformat(format="yuv420p")
                    y = VIDEO_HEIGHT * 3 // 4  # below the moving bar
                    got.video.append((f.width, f.height, luma_at(f, 80, y), luma_at(f, VIDEO_WIDTH - 80, y)))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        for track in self.tracks:
            track.stop()
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


class MiniBridge:
    """A bridge built from ``media.forward`` only: per client a peer with
    ``enable_forwarding``; every received track drained (``mode="arrivals"``, noting the
    last arrival as ``media/bridge.py``'s drain does) and relayed by
    :meth:`relay_to` through one ``ForwardingRelay``."""

    def __init__(self) -> None:
        self.relay = ForwardingRelay()
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[tuple[str, str], MediaStreamTrack] = {}
        self.last_frame: dict[str, float] = {}
        self.drained: dict[str, list[object]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def receive(self, name: str, offer: str) -> RTCPeerConnection:
        """The bridge peer for client ``name``, its remote description set."""
        pc = self.pcs[name] = enable_forwarding(new_pc())

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tracks[(name, track.kind)] = track
            drain = self.relay.subscribe(track, buffered=False, mode="arrivals")
            self._tasks.append(asyncio.ensure_future(self._drain(name, drain)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        return pc

    async def _drain(self, name: str, proxy: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                item = await proxy.recv()
                self.drained.setdefault(name, []).append(item)
                self.last_frame[name] = loop.time()

    def relay_to(self, name: str, source: str, kind: str) -> RelayedTrack:
        """Send ``source``'s ``kind`` track to client ``name`` (a new subscriber)."""
        proxy = self.relay.subscribe(self.tracks[(source, kind)], buffered=False)
        self.pcs[name].addTrack(proxy)
        return proxy

    async def answer(self, name: str, client: Client) -> None:
        pc = self.pcs[name]
        await pc.setLocalDescription(await pc.createAnswer())
        await client.pc.setRemoteDescription(
            RTCSessionDescription(sdp=pc.localDescription.sdp, type="answer")
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pc in self.pcs.values():
            for sender in pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            await pc.close()


@pytest_asyncio.fixture
async def bridge() -> AsyncIterator[MiniBridge]:
    b = MiniBridge()
    try:
        yield b
    finally:
        await b.close()


async def connect(bridge: MiniBridge, clients: dict[str, Client], routes: list[tuple[str, str, str]]) -> None:
    """Offer every client, relay ``(to, from, kind)`` routes, answer, wait until connected."""
    for name, client in clients.items():
        await bridge.receive(name, await client.offer())
    for to, source, kind in routes:
        bridge.relay_to(to, source, kind)
    for name, client in clients.items():
        await bridge.answer(name, client)
    await until(lambda: all(c.pc.connectionState == "connected" for c in clients.values()), timeout=15)


# ---------------------------------------------------------------- the aiortc hooks


def test_aiortc_version_is_one_the_hooks_were_checked_against() -> None:
    """Fails on an aiortc upgrade: re-read RTCRtpReceiver/RTCRtpSender (module docstring of
    media/forward.py), then add the version to TESTED_AIORTC."""
    assert aiortc.__version__ in TESTED_AIORTC, (
        f"aiortc {aiortc.__version__} is installed; media/forward.py hooks aiortc's private "
        f"decode path and was checked against {TESTED_AIORTC} only"
    )
    assert check_aiortc() == aiortc.__version__


def codec(mime: str, profile: str | None = None) -> RTCRtpCodecParameters:
    """aiortc's own codec parameters for ``mime`` (H.264: of ``profile-level-id`` ``profile``)."""
    kind = mime.split("/")[0]
    return next(
        c
        for c in CODECS[kind]
        if c.mimeType == mime and (profile is None or c.parameters.get("profile-level-id") == profile)
    )


def h264_packets(frames: int) -> list[list[bytes]]:
    """RTP payloads of the first ``frames`` pattern frames as aiortc's H.264 encoder makes
    them (a keyframe first), per frame."""
    encoder = H264Encoder()
    out = []
    for i in range(frames):
        frame = pattern_frame(i)
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
        out.append(encoder.encode(frame)[0])
    return out


def test_keyframe_rules_on_real_vp8_and_h264() -> None:
    vp8 = encode_video_loop()
    assert is_keyframe(codec("video/VP8"), vp8[0])
    assert not any(is_keyframe(codec("video/VP8"), f) for f in vp8[1:])
    assert is_keyframe(codec("audio/opus"), b"\x01")

    # aiortc's H.264 encoder packetizes for RTP: depayload as its receiver does, then judge.
    h264 = codec("video/H264")
    frames = [b"".join(depayload(h264, p) for p in payloads) for payloads in h264_packets(3)]
    assert is_keyframe(h264, frames[0])
    assert not any(is_keyframe(h264, f) for f in frames[1:])
    with pytest.raises(ValueError):
        is_keyframe(RTCRtpCodecParameters(mimeType="video/AV1", clockRate=90000, payloadType=45), b"")


def test_keyframe_start_rules_on_real_rtp_packets() -> None:
    """``starts_keyframe`` judges RTP payloads as aiortc's encoders packetize them: only the
    first packet of a keyframe starts one."""
    vp8 = codec("video/VP8")
    encoder = Vp8Encoder()
    packets = []
    noise = random.Random(13)
    for i in range(3):
        frame = VideoFrame(VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p")  # noise: a keyframe of many packets
        for plane in frame.planes:
            plane.update(noise.randbytes(plane.buffer_size))
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=i == 0)
        packets.append(payloads)
    assert len(packets[0]) > 1  # a 640x480 keyframe spans packets
    assert starts_keyframe(vp8, packets[0][0])
    assert not any(starts_keyframe(vp8, p) for p in packets[0][1:])
    assert not any(starts_keyframe(vp8, p) for frame in packets[1:] for p in frame)
    assert not starts_keyframe(vp8, b"")

    h264 = codec("video/H264")
    starts = [[starts_keyframe(h264, p) for p in payloads] for payloads in h264_packets(2)]
    assert any(starts[0]) and not any(starts[1])
    assert starts_keyframe(codec("audio/opus"), b"\x01")


def test_same_codec() -> None:
    assert same_codec(codec("audio/opus"), codec("audio/opus"))
    assert not same_codec(codec("audio/opus"), codec("audio/PCMU"))
    assert same_codec(codec("video/H264", "42e01f"), codec("video/H264", "42e01f"))
    assert not same_codec(codec("video/H264", "42001f"), codec("video/H264", "42e01f"))


# ---------------------------------------------------------------- end to end


async def test_audio_forwarded_both_ways_without_decoding(bridge: MiniBridge) -> None:
    door, resident = Client([ToneTrack(440, AMPLITUDE)]), Client([ToneTrack(880, AMPLITUDE)])
    try:
        await connect(
            bridge,
            {"door": door, "resident": resident},
            [("door", "resident", "audio"), ("resident", "door", "audio")],
        )
        await until(
            lambda: all(len(c.heard.get("audio", Heard("audio")).audio_peaks) > 60 for c in (door, resident))
        )
        for client in (door, resident):
            assert tone_intact(client.heard["audio"].audio_peaks), client.heard["audio"].audio_peaks[10:30]
        # The bridge forwarded RTP packets: no jitter buffer (no encoded frame read), no
        # decoding; its drains saw packet arrival times.
        assert bridge.relay.rtp_forwarded > 100 and bridge.relay.rtp_in >= bridge.relay.rtp_forwarded
        assert bridge.relay.packets_in == 0 and bridge.relay.decoded_frames == 0
        assert all(isinstance(t, float) for items in bridge.drained.values() for t in items)
        assert set(bridge.last_frame) == {"door", "resident"}
        tap = tap_of(bridge.tracks[("door", "audio")])
        assert tap is not None and tap.codec is not None and tap.codec.mimeType == "audio/opus"
        assert tap.packets >= bridge.relay.rtp_forwarded // 2 and tap.octets > 0 and tap.frames == 0
    finally:
        await door.close()
        await resident.close()


async def test_video_forwarded_and_a_late_subscriber_gets_a_keyframe(
    bridge: MiniBridge, tmp_path: Path
) -> None:
    door = Client([ToneTrack(440, AMPLITUDE), PatternTrack()])
    resident = Client([ToneTrack(880, AMPLITUDE)], recv_kinds=("video",))
    viewer = Client([], recv_kinds=("video",))
    try:
        await connect(
            bridge,
            {"door": door, "resident": resident},
            [("door", "resident", "audio"), ("resident", "door", "audio"), ("resident", "door", "video")],
        )
        await until(lambda: len(resident.heard.get("video", Heard("video")).video) > 20)
        width, height, left, right = resident.heard["video"].video[-1]
        assert (width, height) == (VIDEO_WIDTH, VIDEO_HEIGHT)
        assert abs(left - DARK) < 25 and abs(right - BRIGHT) < 25
        await asyncio.sleep(1.0)  # the door's keyframe is long gone: only deltas flow now
        requests = bridge.relay.keyframe_requests

        # A late subscriber on the bridge: its first packet is a keyframe, asked for by PLI.
        late = bridge.relay.subscribe(bridge.tracks[("door", "video")], buffered=False, mode="encoded")
        first = await asyncio.wait_for(late.recv(), 10)
        assert isinstance(first, Packet) and first.is_keyframe
        assert bridge.relay.keyframe_requests > requests
        assert late.dropped >= 0 and late.forwarded >= 1
        late.stop()

        # A late peer: decodes full frames of the pattern from its first one.
        await bridge.receive("viewer", await viewer.offer())
        bridge.relay_to("viewer", "door", "video")
        await bridge.answer("viewer", viewer)
        await until(lambda: len(viewer.heard.get("video", Heard("video")).video) > 5, timeout=15)
        for width, height, left, right in viewer.heard["video"].video:
            assert (width, height) == (VIDEO_WIDTH, VIDEO_HEIGHT)
            assert abs(left - DARK) < 25 and abs(right - BRIGHT) < 25
        assert bridge.relay.decoded_frames == 0

        # A recorder needs frames: an auto subscriber with no sender gets decoded ones.
        # (One file per kind: MediaRecorder opens the container at its first frame, and
        # a video stream whose first frame came after that fails to set its size.)
        recorders = {
            "video": MediaRecorder(str(tmp_path / "door.mkv")),
            "audio": MediaRecorder(str(tmp_path / "door.wav")),
        }
        recorded = {kind: bridge.relay.subscribe(bridge.tracks[("door", kind)]) for kind in recorders}
        for kind, recorder in recorders.items():
            recorder.addTrack(recorded[kind])
            await recorder.start()
        await until(lambda: all(track.decoded > 45 for track in recorded.values()))
        for recorder in recorders.values():
            await recorder.stop()
        with av.open(str(tmp_path / "door.mkv")) as container:
            video_frames = list(container.decode(video=0))
        assert len(video_frames) > 30
        assert all((f.width, f.height) == (VIDEO_WIDTH, VIDEO_HEIGHT) for f in video_frames)
        with av.open(str(tmp_path / "door.wav")) as container:
            peaks = [peak(f) for f in container.decode(audio=0)]
        assert tone_intact(peaks)
    finally:
        for client in (door, resident, viewer):
            await client.close()


async def test_mismatched_codecs_fall_back_to_transcoding(bridge: MiniBridge) -> None:
    door = Client([ToneTrack(440, AMPLITUDE)])  # Opus
    resident = Client([ToneTrack(880, AMPLITUDE)], codecs={"audio": "audio/PCMU"})
    try:
        await connect(
            bridge,
            {"door": door, "resident": resident},
            [("door", "resident", "audio"), ("resident", "door", "audio")],
        )
        await until(
            lambda: all(len(c.heard.get("audio", Heard("audio")).audio_peaks) > 60 for c in (door, resident))
        )
        for client in (door, resident):
            assert tone_intact(client.heard["audio"].audio_peaks), client.heard["audio"].audio_peaks[10:30]
        codecs = {name: tap_of(bridge.tracks[(name, "audio")]) for name in ("door", "resident")}
        assert codecs["door"] is not None and codecs["door"].codec is not None
        assert codecs["resident"] is not None and codecs["resident"].codec is not None
        assert (codecs["door"].codec.mimeType, codecs["resident"].codec.mimeType) == (
            "audio/opus",
            "audio/PCMU",
        )
        assert bridge.relay.decoded_frames > 100  # both directions decoded once, re-encoded by the sender
    finally:
        await door.close()
        await resident.close()


async def test_slow_subscribers_drop_instead_of_queueing(bridge: MiniBridge) -> None:
    door = Client([ToneTrack(440, AMPLITUDE), PatternTrack()])
    resident = Client([], recv_kinds=("audio", "video"))
    try:
        await connect(
            bridge,
            {"door": door, "resident": resident},
            [("resident", "door", "audio"), ("resident", "door", "video")],
        )
        await until(lambda: len(resident.heard.get("video", Heard("video")).video) > 5)
        slow = {
            kind: bridge.relay.subscribe(bridge.tracks[("door", kind)], buffered=False, mode="encoded")
            for kind in ("audio", "video")
        }
        for track in slow.values():
            await asyncio.wait_for(track.recv(), 10)  # started, then not read for a while
        await asyncio.sleep(1.5)
        for track in slow.values():
            assert len(track._items) <= UNBUFFERED_FRAMES
            assert track.dropped > 0
        # Video that fell behind dropped what it held and resumes at a keyframe (asked
        # for by PLI); audio just lost its oldest frames.
        assert slow["video"].keyframe_waits >= 1
        assert bridge.relay.keyframe_requests >= 1
        packet = await asyncio.wait_for(slow["video"].recv(), 10)
        assert isinstance(packet, Packet) and packet.is_keyframe
        for track in slow.values():
            track.stop()
        # The fast subscriber kept its pictures meanwhile.
        seen = len(resident.heard["video"].video)
        await until(lambda: len(resident.heard["video"].video) > seen + 5)
    finally:
        await door.close()
        await resident.close()

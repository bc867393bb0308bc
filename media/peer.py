"""The client side of the bridge: a generated tone, a frame counter, an offer with
complete ICE. Used by the tests and the bench, and meant for the device agent.

Peers made here use the same rules as the bridge (``media/network.py``): no ICE
servers, and host candidates only on the addresses given to ``use_listen_ips``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from array import array
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError
from av import AudioFrame

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


def peak(frame: AudioFrame) -> int:
    """Largest absolute s16 sample of ``frame`` (0 = silence); ``frame`` must be s16."""
    samples = array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


@dataclass
class Received:
    """What arrived on one received track: frame count, loud frames, first arrival."""

    kind: str
    frames: int = 0
    loud: int = 0  # audio frames with a peak above LOUD (a tone, not silence)
    first_at: float | None = None  # time.monotonic() of the first frame

    LOUD = 1000


@dataclass
class ClientPeer:
    """One party's peer connection to the bridge: sends ``tracks``, counts what arrives
    (``received``, one entry per remote track). Close with :meth:`close` (in ``finally``)."""

    tracks: list[MediaStreamTrack] = field(default_factory=list)
    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    received: list[Received] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for track in self.tracks:
            self.pc.addTrack(track)
        if not self.tracks:
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            got = Received(track.kind)
            self.received.append(got)
            self._readers.append(asyncio.create_task(self._read(track, got)))

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
    async def _read(track: MediaStreamTrack, got: Received) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            got.frames += 1
            if got.first_at is None:
                got.first_at = time.monotonic()
            if isinstance(frame, AudioFrame) and frame.format.name == "s16" and peak(frame) > Received.LOUD:
                got.loud += 1

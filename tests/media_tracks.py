"""A generated video track for the media tests (the door's camera): small and slow, so
that VP8 encoding per listener peer costs little CPU on the shared test machine."""

from __future__ import annotations

import asyncio
import fractions
import time

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

VIDEO_CLOCK = 90000
"""RTP clock rate of video, Hz."""


class PatternTrack(MediaStreamTrack):
    """A live video track: ``width`` x ``height`` yuv420p frames at ``fps``, a grey level
    that moves by one step per frame (so every frame differs and the encoder sends it)."""

    kind = "video"

    def __init__(self, width: int = 160, height: int = 120, fps: int = 10) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._n += 1
            await asyncio.sleep(self._start + self._n / self.fps - time.monotonic())
        frame = VideoFrame(self.width, self.height, "yuv420p")
        luma = 16 + (self._n * 7) % 200
        for plane, value in zip(frame.planes, (luma, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = self._n * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

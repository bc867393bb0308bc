"""Helpers of the media tests: a generated video track (the door's camera; small and slow,
so that VP8 encoding per listener peer costs little CPU on the shared test machine), a
reporter that keeps the bridge's signals, and a uvicorn server for an app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator

import uvicorn
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from fastapi import FastAPI

from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party
from tests.fakes import until

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


class Recorder:
    """A bridge ``Reporter`` that keeps ``(call_id, signal, JoinInput)``; a room's building
    call ends when the test sets ``ended[call_id]``."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, str, JoinInput]] = []
        self.ended: dict[str, asyncio.Event] = {}

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        self.signals.append((call_id, signal, inp))

    async def room_ended(self, call_id: str) -> None:
        await self.ended.setdefault(call_id, asyncio.Event()).wait()

    def of(self, party: Party) -> list[str]:
        """The signals about ``party``, in order."""
        return [s for _, s, inp in self.signals if inp.party == party]


async def serve(app: FastAPI, port: int) -> AsyncIterator[None]:
    """Run ``app`` under uvicorn on 127.0.0.1:``port`` while the generator is suspended."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())
        yield
    finally:
        server.should_exit = True
        await task

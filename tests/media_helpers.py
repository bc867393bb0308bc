"""Helpers of the media tests: the door's camera (a small, slow test pattern), a
reporter that keeps the bridge's signals, and a uvicorn server for an app on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from media.peer import TestPatternTrack
from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party
from tests.fakes import until


def door_camera() -> TestPatternTrack:
    """The door's camera in tests: media/peer.py's test pattern, small and slow (160x120 at
    10 fps) so that VP8 encoding per listener peer costs little CPU on the shared machine."""
    return TestPatternTrack(160, 120, 10)


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

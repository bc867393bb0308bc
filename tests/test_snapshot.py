"""The visitor snapshot (``media/snapshot.py``, issue 11 item 4): one JPEG of the door's
first picture per call, scaled down, stored under a checked file name, taken once; the
browser test (``tests/test_browser.py``) sees it end to end in the call log."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.snapshot import SnapshotStore, jpeg_of, take_snapshot


def _frame(width: int = 640, height: int = 480) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([100]) * plane.buffer_size)
    return frame


class _Track(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: list[av.VideoFrame], hang: bool = False) -> None:
        super().__init__()
        self.frames, self.hang, self.stopped = frames, hang, False

    async def recv(self) -> av.VideoFrame:  # type: ignore[override]
        if self.hang:
            await asyncio.sleep(3600)
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)

    def stop(self) -> None:
        self.stopped = True
        super().stop()


def test_jpeg_of_scales_down_and_is_a_jpeg() -> None:
    data = jpeg_of(_frame(1280, 720), max_width=480)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    decoded = next(av.open(io.BytesIO(data), format="mjpeg").decode(video=0))
    assert (decoded.width, decoded.height) == (480, 270)
    small = next(av.open(io.BytesIO(jpeg_of(_frame(320, 240))), format="mjpeg").decode(video=0))
    assert (small.width, small.height) == (320, 240)  # never scaled up


def test_store_names_files_by_checked_call_id(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    assert store.load("call-1") is None and not store.exists("call-1")
    store.save("call-1", b"jpeg")
    assert store.load("call-1") == b"jpeg" and store.path("call-1") == tmp_path / "snapshots" / "call-1.jpg"
    for bad in ("../etc/passwd", "a/b", "", ".hidden", "x" * 129, "Acme~call-1", "~call-1"):
        with pytest.raises(ValueError):
            store.path(bad)
        assert store.load(bad) is None and not store.exists(bad)
    store.save("acme~call-1", b"other tenant's")  # rooms outside the default tenant: <tenant>~<call id>
    assert store.load("acme~call-1") == b"other tenant's"


async def test_take_snapshot_once_and_never_raises(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    track = _Track([_frame()])
    path = await take_snapshot(store, "call-2", track)
    assert path is not None and path.read_bytes()[:2] == b"\xff\xd8" and track.stopped
    again = _Track([_frame()])
    assert await take_snapshot(store, "call-2", again) is None and again.stopped  # one per call
    assert await take_snapshot(store, "call-3", _Track([])) is None  # the track ended first
    hanging = _Track([], hang=True)
    assert await take_snapshot(store, "call-4", hanging, timeout_s=0.05) is None and hanging.stopped
    assert not store.exists("call-3") and not store.exists("call-4")

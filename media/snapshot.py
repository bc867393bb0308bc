"""The visitor snapshot (issue 11 item 4): one JPEG of the door's early-media video per call,
for the resident's call log ("a call log with faces").

The bridge forwards encoded frames without decoding (``media/forward.py``), so a snapshot
is the one place it decodes video: when the caller's video track arrives, a ``decoded``
subscription of it on the room's relay (the relay asks the door for a keyframe and decodes
only while that subscriber exists) yields the first picture, which is scaled to at most
:data:`MAX_WIDTH` pixels wide, encoded as JPEG with PyAV's ``mjpeg`` encoder (no other
image library) and written to ``<recordings_dir>/snapshots/<call_id>.jpg``; then the
subscription stops. One per call: a caller that re-joins does not replace it. Served by the
bridge's control API (``GET /rooms/{call_id}/snapshot``) to ringflow's API
(``GET /v1/calls/{call_id}/snapshot.jpg``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from fractions import Fraction
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

MAX_WIDTH = 480
"""Widest snapshot, pixels (the log shows it as a thumbnail; a tap shows it larger)."""

FIRST_FRAME_TIMEOUT_S = 15.0
"""How long the bridge waits for the caller's first decodable picture, seconds."""

_SAFE_ID = re.compile(r"^(?:[a-z0-9][a-z0-9-]{0,63}~)?[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
"""A room id as file name: a call id, tenant-qualified outside the default tenant
(``ringflow.contracts.tenancy.QualifiedId``: ``<tenant>~<call id>``); never ``/`` or ``..``."""


def jpeg_of(frame: av.VideoFrame, max_width: int = MAX_WIDTH, quality: int = 6) -> bytes:
    """``frame`` as a JPEG (baseline, 4:2:0), scaled down to ``max_width`` pixels wide (even
    sizes, aspect kept). ``quality``: the mjpeg encoder's qscale, 2 (best) to 31. Raises
    ``av.error.FFmpegError`` when the encoder refuses the frame."""
    width, height = frame.width, frame.height
    if width > max_width:
        height = max(2, round(height * max_width / width))
        width = max_width
    width, height = width - width % 2, height - height % 2
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qmin": str(quality), "qmax": str(quality)}
    picture.pts = 0
    data = b"".join(bytes(p) for p in codec.encode(picture))
    data += b"".join(bytes(p) for p in codec.encode(None))
    return data


class SnapshotStore:
    """Snapshots on disk, one file per call: ``<root>/<call_id>.jpg`` (``root`` is created
    on the first write; ``call_id`` is the room's id, tenant-qualified). Ids are checked
    against the qualified-id pattern before they become file names."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, call_id: str) -> Path:
        """The file of ``call_id``'s snapshot. Raises ``ValueError`` for an id that is not a
        (tenant-qualified) identifier (``[<tenant>~][A-Za-z0-9][A-Za-z0-9._:@-]*``)."""
        if not _SAFE_ID.match(call_id):
            raise ValueError(f"not a call id: {call_id!r}")
        return self.root / f"{call_id}.jpg"

    def exists(self, call_id: str) -> bool:
        """Whether ``call_id`` has a snapshot (False for an id that cannot have one)."""
        try:
            return self.path(call_id).is_file()
        except ValueError:
            return False

    def save(self, call_id: str, data: bytes) -> Path:
        """Write ``data`` atomically (a temporary file renamed); returns the path."""
        path = self.path(call_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def load(self, call_id: str) -> bytes | None:
        """The JPEG of ``call_id``, or None when there is none."""
        try:
            return self.path(call_id).read_bytes()
        except (FileNotFoundError, ValueError):
            return None


async def take_snapshot(
    store: SnapshotStore, call_id: str, decoded: MediaStreamTrack, timeout_s: float = FIRST_FRAME_TIMEOUT_S
) -> Path | None:
    """Take ``call_id``'s snapshot from ``decoded`` (a ``decoded`` relay subscription of the
    caller's video) unless it has one: the first frame within ``timeout_s`` seconds, as
    :func:`jpeg_of`, saved in ``store``. Stops ``decoded`` in every case. Returns the file,
    or None (no frame in time, the track ended, or the encoder failed: logged, never raised)."""
    try:
        if store.exists(call_id):
            return None
        async with asyncio.timeout(timeout_s):
            frame = await decoded.recv()
        if not isinstance(frame, av.VideoFrame):
            return None
        data = await asyncio.to_thread(jpeg_of, frame)
        path = await asyncio.to_thread(store.save, call_id, data)
        log.info("room %s: snapshot %s (%d bytes)", call_id, path, len(data))
        return path
    except (TimeoutError, MediaStreamError):
        log.info("room %s: no picture for a snapshot", call_id)
        return None
    except Exception:
        log.exception("room %s: snapshot failed", call_id)
        return None
    finally:
        with contextlib.suppress(Exception):
            decoded.stop()

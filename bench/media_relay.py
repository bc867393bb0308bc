"""Benchmark: media bridge relay CPU per two-way audio call, and answer -> first audio frame.

The bridge (``media.server``'s control API with a reporter that drops the signals)
runs in its own process, so its CPU (``/proc/<pid>/stat``) is the relay's alone;
this process runs the parties: per call a door peer and a resident peer, each
sending a generated 48 kHz tone (Opus, 20 ms frames) and counting what arrives,
all on 127.0.0.1. For each step of ``--calls`` concurrent two-way calls it reports,
over ``--duration`` seconds: bridge CPU (% of one core) in total and per call, the
frames each side received per second (50/s = every 20 ms frame arrived), and the
time from the resident's offer (the answer) to the door's first audio frame.

Issue 3's targets ("forward, don't transcode"): >= 50 two-way audio calls per core
(<= 2 % of a core per call) and answer -> first audio frame < 300 ms on loopback.
The stock ``MediaRelay`` decodes and re-encodes every stream, so expect ~10 % of a
core per one-way stream until the bridge forwards encoded frames. Figures only, no
assertions; the machine is shared, so the load average is printed beside them.

``python -m bench.media_relay [--quick] [--calls 1,2,4] [--duration S]``
``python -m bench.media_relay --serve-bridge PORT`` (internal: the bridge process)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

import httpx

from bench.common import cpu_s, emit, info, machine, parser, summary_ms, table
from media.models import PeerOffer, Role
from media.network import MediaNetwork
from media.peer import ClientPeer, ToneTrack
from ringflow.contracts.calls import JoinInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.settings import Settings, get_settings
from ringflow.stack.ports import free_port

FRAMES_PER_S = 50
"""Audio frames per second and direction at 20 ms ptime."""


class DropReporter:
    """Reporter for a bridge without Temporal: signals are dropped, rooms never end."""

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        return None

    async def room_ended(self, room_id: str) -> None:
        await asyncio.Event().wait()


def serve_bridge(port: int) -> None:
    """Run the bridge's control API on ``port`` with :class:`DropReporter` until SIGTERM."""
    import uvicorn

    from media.server import create_bridge_app

    settings = get_settings().model_copy(update={"media_port": port, "media_connect_timeout_s": 60.0})
    uvicorn.run(create_bridge_app(settings, DropReporter()), host="127.0.0.1", port=port, log_level="warning")


class Call:
    """One two-way audio call through the bridge: a door peer and a resident peer."""

    def __init__(self, http: httpx.AsyncClient, api_key: str) -> None:
        self.http, self.api_key = http, api_key
        self.call_id = f"bench-{uuid.uuid4().hex[:8]}"  # one room per building call
        self.door = ClientPeer([ToneTrack(440)])
        self.resident = ClientPeer([ToneTrack(880)])
        self.answered_at = 0.0

    async def _join(self, peer: ClientPeer, party: Party, role: Role) -> None:
        offer = PeerOffer(party=party, role=role, sdp=await peer.offer())
        r = await self.http.post(
            f"/rooms/{self.call_id}/peers",
            json=offer.model_dump(mode="json"),
            headers={"X-API-Key": self.api_key},
        )
        r.raise_for_status()
        await peer.accept(r.json()["sdp"])

    async def start(self) -> None:
        """The door joins and waits; the resident answers (joins); both send."""
        await self._join(self.door, Party(kind=PartyKind.DEVICE, id="LOBBY-1"), Role.CALLER)
        await asyncio.wait_for(self.door.connected(), 30)
        self.answered_at = time.monotonic()
        bob = Party(kind=PartyKind.USER, id="bob")
        await self._join(self.resident, bob, Role.LISTENER)
        r = await self.http.put(  # the answer makes bob the talker (MediaActivities.connect)
            f"/rooms/{self.call_id}/talker",
            json={"party": bob.model_dump(mode="json"), "record": False},
            headers={"X-API-Key": self.api_key},
        )
        r.raise_for_status()

    def first_audio_s(self) -> float | None:
        """Answer (the resident's offer) -> first audio frame at the door, seconds."""
        firsts = [r.first_at for r in self.door.received if r.kind == "audio" and r.first_at is not None]
        return min(firsts) - self.answered_at if firsts else None

    def frames(self) -> tuple[int, int]:
        """Frames received so far by (door, resident)."""
        return sum(r.frames for r in self.door.received), sum(r.frames for r in self.resident.received)

    async def close(self) -> None:
        await self.door.close()
        await self.resident.close()


async def step(
    http: httpx.AsyncClient, settings: Settings, bridge_pid: int, n: int, duration_s: float
) -> dict[str, Any]:
    """``n`` concurrent calls for ``duration_s`` seconds (after a 2 s warm-up); one result row."""
    calls = [Call(http, settings.api_key) for _ in range(n)]
    try:
        await asyncio.gather(*(c.start() for c in calls))
        await asyncio.sleep(2.0)  # ICE/DTLS done, jitter buffers filled
        before = [c.frames() for c in calls]
        cpu0, t0 = cpu_s(bridge_pid), time.monotonic()
        await asyncio.sleep(duration_s)
        cpu1, t1 = cpu_s(bridge_pid), time.monotonic()
        after = [c.frames() for c in calls]
        elapsed = t1 - t0
        per_side = [(a[i] - b[i]) / elapsed for a, b in zip(after, before, strict=True) for i in (0, 1)]
        cpu_pct = 100 * (cpu1 - cpu0) / elapsed
        firsts = [f for f in (c.first_audio_s() for c in calls) if f is not None]
        return {
            "calls": n,
            "bridge_cpu_pct": cpu_pct,
            "cpu_pct_per_call": cpu_pct / n,
            "calls_per_core_est": 100 / (cpu_pct / n) if cpu_pct > 0 else float("nan"),
            "min_frames_per_s": min(per_side),
            "mean_frames_per_s": sum(per_side) / len(per_side),
            "answer_to_audio": summary_ms(firsts),
        }
    finally:
        for c in calls:
            await c.close()


async def run(calls: list[int], duration_s: float) -> dict[str, Any]:
    """Start the bridge process, run every step, stop the bridge."""
    MediaNetwork().install()
    port = free_port()
    settings = get_settings().model_copy(update={"media_port": port, "media_url": f"http://127.0.0.1:{port}"})
    env = os.environ | {"RINGFLOW_API_KEY": settings.api_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.media_relay", "--serve-bridge", str(port), env=env
    )
    try:
        async with httpx.AsyncClient(base_url=settings.media_url, timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            rows = []
            for n in calls:
                info(f"media_relay: {n} two-way audio call(s) for {duration_s:g} s")
                rows.append(await step(http, settings, proc.pid, n, duration_s))
                await asyncio.sleep(1.0)  # let the bridge close the rooms' leftovers
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    return {"machine": machine(), "duration_s": duration_s, "steps": rows}


def main() -> None:
    p = parser("media bridge relay CPU per two-way audio call; answer -> first audio frame")
    p.add_argument("--calls", default=None, help="comma-separated concurrent call counts (default 1,2,4)")
    p.add_argument("--duration", type=float, default=None, help="measured seconds per step (default 10)")
    p.add_argument("--serve-bridge", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_bridge:
        serve_bridge(args.serve_bridge)
        return
    calls = [int(x) for x in (args.calls or ("1,2" if args.quick else "1,2,4")).split(",")]
    duration = args.duration or (4.0 if args.quick else 10.0)
    result = asyncio.run(run(calls, duration))
    rows = [
        {k: v for k, v in r.items() if k != "answer_to_audio"}
        | {
            "answer_to_audio_p50_ms": r["answer_to_audio"]["p50_ms"],
            "answer_to_audio_max_ms": r["answer_to_audio"]["max_ms"],
        }
        for r in result["steps"]
    ]
    load = result["machine"]["loadavg"]
    title = f"media bridge, two-way Opus audio calls (MediaRelay, transcoding); load {load}"
    emit("media_relay", result, [table(title, rows)], args.json_out)


if __name__ == "__main__":
    main()

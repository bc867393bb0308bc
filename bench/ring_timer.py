"""Benchmark 3: ring-timer precision.

``--calls`` calls (default 1,000; ``--quick`` 200) ring at once, each one resident with
its own ring timeout so that the deadlines are spread evenly over ``--spread`` seconds
(default 60; quick 20) after a placement lead (``--lead``, default calls/20 + 10 s: the
calls are placed at ~100/s on this machine, bench/RESULTS.md run E).
Residents are connected (:class:`~ringflow.client.PartyClient`) and never answer.

Lateness of each ``timeout`` (all seconds, reported in ms):

- event: the ``timeout`` event's ``at`` (workflow time of the task the timer woke)
  minus (the ``ringing`` event's ``at`` + the call's ring timeout);
- socket: the ``call_cancelled`` push's arrival at the resident's WebSocket (wall clock)
  minus the same deadline: the event plus the finish ``record`` activity, NOTIFY and delivery.

Baseline, same run, same dev server: as many :class:`~bench.common.BareTimerWorkflow`
with the same spread (lateness of the workflow task after ``workflow.sleep``).
Target: p99 < 250 ms.

``python -m bench.ring_timer [--quick] [--calls N] [--spread S]``
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.common import (
    BareBaseline,
    Bench,
    PushWaiter,
    call_body,
    close_all,
    connect_residents,
    emit,
    info,
    load_directory,
    machine,
    open_bench,
    parser,
    summary_ms,
    table,
)

PLACE_CONCURRENCY = 16
"""Calls placed at once while setting up."""


@dataclass
class Lateness:
    """What :func:`measure_timeouts` saw: lateness in seconds per call, and the counts."""

    event_late: list[float] = field(default_factory=list)  # timeout event at - deadline
    socket_late: list[float] = field(default_factory=list)  # call_cancelled at socket - deadline
    intervals: list[tuple[float, float]] = field(default_factory=list)  # (ringing, timeout) epoch s
    late_placed: int = 0  # placed after the first deadline
    failed_place: int = 0
    missing: int = 0  # no timeout event


async def measure_timeouts(bench: Bench, n: int, spread: float, lead: float, prefix: str = "") -> Lateness:
    """Ring ``n`` new units (one connected resident each, who never answers) with deadlines
    spread evenly over ``spread`` s after ``lead`` s; the lateness of each ``timeout``."""
    directory = await load_directory(bench, n, 1, prefix=prefix)
    units = list(directory.units.items())
    waiter = PushWaiter()
    clients = await connect_residents(bench, [rs[0] for _, rs in units], waiter.handler)
    mono0, wall0 = time.monotonic(), time.time()
    calls: list[tuple[str, float]] = []  # (call_id, ring timeout s)
    futures: dict[str, asyncio.Future[Any]] = {}
    out = Lateness()
    try:
        t_start = time.monotonic()
        first_deadline = t_start + lead
        sem = asyncio.Semaphore(PLACE_CONCURRENCY)

        async def place(i: int) -> None:
            unit_id, _ = units[i]
            call_id = f"rt-{prefix}{bench.run_id}-{i}"
            async with sem:
                now = time.monotonic()
                if now > first_deadline:
                    out.late_placed += 1
                rt = round(max(1.0, t_start + lead + spread * i / n - now), 3)
                futures[call_id] = waiter.expect(call_id, "call_cancelled")
                r = await bench.backend.place_call(
                    call_body(directory.devices[i % len(directory.devices)], unit_id, rt), call_id
                )
            if r.status_code >= 300:
                out.failed_place += 1
            else:
                calls.append((call_id, rt))

        info(f"[ring_timer] placing {n} calls, deadlines {lead:.0f}..{lead + spread:.0f} s from now ...")
        await asyncio.gather(*(place(i) for i in range(n)))
        info(f"[ring_timer] placed in {time.monotonic() - t_start:.1f} s; waiting for the timeouts ...")
        end_by = t_start + lead + spread + n * 0.2 + 60.0
        await asyncio.wait(list(futures.values()), timeout=max(1.0, end_by - time.monotonic()))
        rsem = asyncio.Semaphore(PLACE_CONCURRENCY)

        async def read(call_id: str, rt: float) -> None:
            async with rsem:
                view = await bench.backend.call(call_id)
            ev = {e["name"]: e for e in view["events"]}
            if "ringing" not in ev or "timeout" not in ev:
                out.missing += 1
                return
            ringing = datetime.fromisoformat(ev["ringing"]["at"]).timestamp()
            deadline = ringing + rt
            timeout_at = datetime.fromisoformat(ev["timeout"]["at"]).timestamp()
            out.intervals.append((ringing, timeout_at))
            out.event_late.append(timeout_at - deadline)
            fut = futures.get(call_id)
            if fut is not None and fut.done() and not fut.cancelled():
                out.socket_late.append(wall0 + (fut.result().received_at - mono0) - deadline)

        await asyncio.gather(*(read(c, rt) for c, rt in calls))
    finally:
        await close_all(clients)
    return out


async def run(args: Any) -> dict[str, Any]:
    n = args.calls or (200 if args.quick else 1000)
    spread = args.spread or (20.0 if args.quick else 60.0)
    lead = args.lead or (n / 20.0 + 10.0)
    async with open_bench("ring_timer", args) as bench:
        late = await measure_timeouts(bench, n, spread, lead)
        # bare baseline: same count, same spread, after ringflow's timers are done
        async with BareBaseline(bench.client) as bare:
            info(f"[ring_timer] bare baseline: {n} timers over {spread:g} s ...")
            bare_late = await bare.timer_lateness(
                [5.0 + spread * i / n for i in range(n)], timeout_s=spread + 60.0
            )
    rows: list[dict[str, Any]] = [
        {"what": "ringflow timeout event", **summary_ms(late.event_late)},
        {"what": "ringflow call_cancelled at socket", **summary_ms(late.socket_late)},
        {"what": "bare Temporal timer task", **summary_ms(bare_late)},
    ]
    p99 = summary_ms(late.event_late)["p99_ms"]
    result = {
        "calls": n,
        "spread_s": spread,
        "lead_s": lead,
        "placed_after_first_deadline": late.late_placed,
        "max_ringing_at_once": max_overlap(late.intervals),
        "failed_to_place": late.failed_place,
        "missing_timeout_event": late.missing,
        "rows": rows,
        "target": "timeout event lateness p99 < 250 ms",
        "target_result": "met" if p99 < 250 else "missed",
        "machine_after": machine(),
    }
    emit(
        "ring_timer",
        result,
        [
            table(f"ring-timer lateness, {n} ringing calls, deadlines over {spread:g} s", rows),
            f"at most {result['max_ringing_at_once']} ringing at once; "
            f"placed after the first deadline: {late.late_placed}; failed to place: {late.failed_place}; "
            f"no timeout event: {late.missing}; target p99 < 250 ms: {result['target_result']}",
        ],
        args.json_out,
    )
    return result


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one instant."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = cur = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def main() -> None:
    p = parser("ring-timer precision")
    p.add_argument("--calls", type=int, help="concurrently ringing calls (default 1000, --quick 200)")
    p.add_argument("--spread", type=float, help="deadlines spread over this many seconds (60, --quick 20)")
    p.add_argument("--lead", type=float, help="seconds before the first deadline (default calls/20 + 10)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

"""Benchmark 4: capacity of one worker.

``--calls`` calls (default 10,000; ``--quick`` 1,000) ring at once, one resident each,
ring timeout 3,600 s (nobody answers, no socket is needed: the ring push waits in
the outbox). Measured from ``/proc``: the worker's RSS before and after (total and per
ringing call), its CPU while idle for ``IDLE_WINDOW_S`` seconds once every call rings,
and the API's and Temporal dev server's RSS.

Baseline, same run: as many :class:`~bench.common.BareTimerWorkflow` sleeping 3,600 s
on a worker in this process; the RSS growth of this process.

The worker keeps at most ``RINGFLOW_WORKER_MAX_CACHED_WORKFLOWS`` workflow states in
memory (default 9,000; a ringing call is ONE workflow, ``BuildingCallWorkflow``): with more
ringing calls than that, the rest are evicted and replayed from history when their
timer fires or a message arrives, so RSS stops growing near the cache size.
Target: under 1 GiB total, idle CPU near 0.

``python -m bench.capacity [--quick] [--calls N] [--timer-calls M]``: with M, once the N calls
ring, M more ring with deadlines spread over 60 s (``bench.ring_timer.measure_timeouts``) and
their timeout lateness is reported: the ring timer while N calls are held.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.common import (
    BareBaseline,
    BareTimerWorkflow,
    call_body,
    cpu_s,
    emit,
    info,
    load_directory,
    machine,
    open_bench,
    parser,
    rss_bytes,
    summary_ms,
    table,
)
from bench.ring_timer import measure_timeouts
from ringflow.settings import get_settings

RING_TIMEOUT_S = 3600.0
"""Ring timeout of the capacity calls, seconds (they ring for the whole benchmark)."""

IDLE_WINDOW_S = 10.0
"""How long the worker's idle CPU is measured, seconds."""

PLACE_CONCURRENCY = 16
"""Calls placed at once."""

MIB = 1024 * 1024


async def _settle(pid: int, limit_s: float = 180.0) -> float:
    """Wait until ``pid`` uses < 5 % of a core over 2 s (at most ``limit_s``); seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        c0 = cpu_s(pid)
        await asyncio.sleep(2.0)
        if (cpu_s(pid) - c0) / 2.0 < 0.05:
            break
    return time.monotonic() - t0


async def run(args: Any) -> dict[str, Any]:
    n = args.calls or (1000 if args.quick else 10000)
    async with open_bench("capacity", args) as bench:
        if bench.worker_pid is None:
            raise SystemExit("capacity needs the worker's pid (--worker-pid with an external stack)")
        wpid = bench.worker_pid
        directory = await load_directory(bench, n, 1, ring_timeout_s=RING_TIMEOUT_S)
        units = list(directory.units)
        await _settle(wpid, 30)
        rss0 = rss_bytes(wpid)
        api_rss0 = rss_bytes(bench.api_pid) if bench.api_pid else 0
        tmp_rss0 = rss_bytes(bench.temporal_pid) if bench.temporal_pid else 0
        cpu0 = cpu_s(wpid)
        failed = 0
        sem = asyncio.Semaphore(PLACE_CONCURRENCY)
        prefix = f"cap-{bench.run_id}-"

        async def place(i: int) -> None:
            nonlocal failed
            async with sem:
                try:
                    r = await bench.backend.place_call(
                        call_body(directory.devices[i % len(directory.devices)], units[i], RING_TIMEOUT_S),
                        f"{prefix}{i}",
                    )
                    failed += r.status_code >= 300
                except Exception:
                    failed += 1

        t0 = time.monotonic()
        info(f"[capacity] placing {n} calls ...")
        tasks = [asyncio.create_task(place(i)) for i in range(n)]
        await asyncio.wait(tasks, timeout=max(600.0, n / 5.0))
        place_s = time.monotonic() - t0
        info(f"[capacity] placed in {place_s:.0f} s ({n / place_s:.1f} calls/s); waiting until all ring ...")
        ringing = 0
        deadline = time.monotonic() + max(300.0, n * 0.2)
        while time.monotonic() < deadline:
            ringing = await bench.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE type = 'incoming_call' AND call_id LIKE $1", prefix + "%"
            )
            if ringing >= n - failed:
                break
            await asyncio.sleep(2.0)
        all_ringing_s = time.monotonic() - t0
        place_cpu = cpu_s(wpid) - cpu0
        settle_s = await _settle(wpid)
        c0 = cpu_s(wpid)
        await asyncio.sleep(IDLE_WINDOW_S)
        idle_cpu = (cpu_s(wpid) - c0) / IDLE_WINDOW_S
        rss1 = rss_bytes(wpid)
        api_rss1 = rss_bytes(bench.api_pid) if bench.api_pid else 0
        tmp_rss1 = rss_bytes(bench.temporal_pid) if bench.temporal_pid else 0
        # bare baseline: n sleeping workflows on a worker in this process
        import os

        me = os.getpid()
        async with BareBaseline(bench.client) as bare:
            b_rss0 = rss_bytes(me)
            bsem = asyncio.Semaphore(50)

            async def start(i: int) -> None:
                async with bsem:
                    await bench.client.start_workflow(
                        BareTimerWorkflow.run,
                        RING_TIMEOUT_S,
                        id=f"bare-cap-{uuid.uuid4().hex}",
                        task_queue=bare.task_queue,
                    )

            tb = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*(start(i) for i in range(n))), max(300.0, n / 5.0))
            await asyncio.sleep(5.0)
            bare_start_s = time.monotonic() - tb
            b_rss1 = rss_bytes(me)

        late = None
        if args.timer_calls:  # the ring timer's measure while the n calls still ring
            late = await measure_timeouts(bench, args.timer_calls, 60.0, args.timer_calls / 20.0 + 10.0, "t")
            rss_timers = rss_bytes(wpid)

    rows = [
        {
            "what": "ringflow worker",
            "calls": n,
            "ringing": ringing,
            "rss_before_MiB": rss0 / MIB,
            "rss_after_MiB": rss1 / MIB,
            "rss_per_call_KiB": (rss1 - rss0) / max(1, ringing) / 1024,
            "idle_cpu_pct_core": idle_cpu * 100,
        },
        {
            "what": "bare Temporal worker (bench process)",
            "calls": n,
            "ringing": n,
            "rss_before_MiB": b_rss0 / MIB,
            "rss_after_MiB": b_rss1 / MIB,
            "rss_per_call_KiB": (b_rss1 - b_rss0) / n / 1024,
            "idle_cpu_pct_core": float("nan"),
        },
    ]
    result = {
        "calls": n,
        "failed_to_place": failed,
        "ringing": ringing,
        "place_s": place_s,
        "place_rate_per_s": n / place_s,
        "all_ringing_after_s": all_ringing_s,
        "worker_cpu_s_while_placing": place_cpu,
        "worker_cpu_ms_per_call_setup": place_cpu * 1000 / max(1, ringing),
        "settle_s": settle_s,
        "idle_window_s": IDLE_WINDOW_S,
        "api_rss_MiB": [api_rss0 / MIB, api_rss1 / MIB],
        "temporal_rss_MiB": [tmp_rss0 / MIB, tmp_rss1 / MIB],
        "bare_start_s": bare_start_s,
        "max_cached_workflows": get_settings().worker_max_cached_workflows,
        "rows": rows,
        "target": "worker RSS < 1 GiB total, idle CPU near 0",
        "target_result": "met" if rss1 < 1024 * MIB and idle_cpu < 0.02 else "missed",
        "machine_after": machine(),
    }
    timer_lines: list[str] = []
    if late is not None:
        timer_rows = [
            {"what": "ringflow timeout event", **summary_ms(late.event_late)},
            {"what": "ringflow call_cancelled at socket", **summary_ms(late.socket_late)},
        ]
        p99 = summary_ms(late.event_late)["p99_ms"]
        result["timers"] = {
            "calls": args.timer_calls,
            "rows": timer_rows,
            "missing_timeout_event": late.missing,
            "failed_to_place": late.failed_place,
            "worker_rss_after_MiB": rss_timers / MIB,
            "target": "timeout event lateness p99 < 250 ms",
            "target_result": "met" if p99 < 250 else "missed",
        }
        timer_lines = [
            table(
                f"ring-timer lateness while {n} calls ring: {args.timer_calls} more, deadlines over 60 s",
                timer_rows,
            ),
            f"worker RSS after them {rss_timers / MIB:.0f} MiB; no timeout event: {late.missing}; "
            f"target p99 < 250 ms: {result['timers']['target_result']}",
        ]
    emit(
        "capacity",
        result,
        [
            *timer_lines,
            table(f"capacity: {n} ringing calls on one worker", rows),
            f"placed {n} in {place_s:.0f} s ({n / place_s:.1f}/s), all ringing after {all_ringing_s:.0f} s; "
            f"worker CPU {result['worker_cpu_ms_per_call_setup']:.1f} ms per call set up; "
            f"API RSS {api_rss0 / MIB:.0f} -> {api_rss1 / MIB:.0f} MiB; Temporal dev server RSS "
            f"{tmp_rss0 / MIB:.0f} -> {tmp_rss1 / MIB:.0f} MiB; target: {result['target_result']}",
        ],
        args.json_out,
    )
    return result


def main() -> None:
    p = parser("capacity of one worker")
    p.add_argument("--calls", type=int, help="concurrently ringing calls (default 10000, --quick 1000)")
    p.add_argument(
        "--timer-calls",
        type=int,
        default=0,
        help="then ring this many more, deadlines over 60 s, and measure their lateness (bench.ring_timer)",
    )
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

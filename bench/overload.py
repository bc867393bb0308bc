"""Benchmark 5: overload, a burst of 5x the sustainable rate.

The embedded stack's API runs with admission control (``api/admission.py``) at
``--admission-rate`` calls/s (default: ``--sustainable``; 0 = off, every call is accepted
and queues in Temporal) with a bucket of ``--admission-burst`` (default: one second's
worth), so calls above it get ``429`` + ``Retry-After``; against ``--api-url`` the
external API's own settings apply. ``--sustainable`` calls/s (default 10: what one worker sets up within
the setup target on this 2-core machine, bench/RESULTS.md run E, ``bench.setup_latency``) x
``--factor`` (5) for ``--duration`` seconds (10; ``--quick`` 5), each call to its own
unit with one connected resident that never answers (ring timeout ``RING_TIMEOUT_S``).

Reported: POST status codes (429s counted), POST response time, setup latency
(POST -> ``incoming_call`` at the socket) p50/p99/max of the calls whose push arrived
within ``PUSH_TIMEOUT_S``, how many did not, and when the backlog drained. Baseline:
bare start -> first activity at the same burst rate, same run.

``python -m bench.overload [--quick] [--sustainable R] [--factor F] [--duration S]
[--admission-rate R] [--admission-burst N]``
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import (
    BareBaseline,
    PushWaiter,
    call_body,
    close_all,
    connect_residents,
    emit,
    info,
    load_directory,
    machine,
    open_bench,
    paced,
    parser,
    settle,
    summary_ms,
    table,
)

RING_TIMEOUT_S = 5.0
"""Ring timeout of the burst calls, seconds."""

PUSH_TIMEOUT_S = 120.0
"""A push not at the socket this many seconds after the POST counts as lost/too late."""


async def run(args: Any) -> dict[str, Any]:
    duration = args.duration or (5.0 if args.quick else 10.0)
    rate = args.sustainable * args.factor
    n = round(rate * duration)
    admission_rate = args.sustainable if args.admission_rate is None else args.admission_rate
    admission_burst = args.admission_burst or max(1, round(admission_rate))
    async with open_bench(
        "overload", args, admission_rate_per_s=admission_rate, admission_burst=admission_burst
    ) as bench:
        directory = await load_directory(bench, n, 1, ring_timeout_s=RING_TIMEOUT_S)
        units = [(u, rs[0]) for u, rs in directory.units.items()]
        waiter = PushWaiter()
        clients = await connect_residents(bench, [r for _, r in units], waiter.handler)
        setup: list[float] = []
        post: list[float] = []
        statuses: dict[str, int] = {}
        no_push = 0
        last_push = 0.0
        try:
            t_burst = time.monotonic()

            async def one(i: int) -> None:
                nonlocal no_push, last_push
                unit_id, _ = units[i]
                call_id = f"ov-{bench.run_id}-{i}"
                fut = waiter.expect(call_id, "incoming_call")
                t0 = time.monotonic()
                try:
                    r = await bench.backend.place_call(
                        call_body(directory.devices[i % len(directory.devices)], unit_id, RING_TIMEOUT_S),
                        call_id,
                    )
                except Exception as e:
                    statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                    return
                post.append(time.monotonic() - t0)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code >= 300:
                    return
                try:
                    msg = await asyncio.wait_for(fut, PUSH_TIMEOUT_S)
                    setup.append(msg.received_at - t0)
                    last_push = max(last_push, msg.received_at)
                except TimeoutError:
                    no_push += 1

            info(f"[overload] burst: {rate:g} calls/s for {duration:g} s ({n} calls) ...")
            await paced(rate, duration, one, grace_s=PUSH_TIMEOUT_S + 10)
            drained_s = last_push - t_burst if last_push else float("nan")
            await asyncio.sleep(RING_TIMEOUT_S + 2)
            await settle(bench.worker_pid)  # the baseline runs on an idle ringflow
            async with BareBaseline(bench.client) as bare:
                info(f"[overload] bare baseline at {rate:g}/s for {duration:g} s ...")
                bare_lat, bare_failed = await bare.latency_at_rate(rate, duration)
        finally:
            await close_all(clients)
    s, b = summary_ms(setup), summary_ms(bare_lat)
    rows = [
        {"what": "ringflow POST -> push at socket", **s, "failed": no_push},
        {"what": "ringflow POST response", **summary_ms(post), "failed": 0},
        {"what": "bare start -> activity", **b, "failed": bare_failed},
    ]
    result = {
        "sustainable_per_s": args.sustainable,
        "factor": args.factor,
        "burst_rate_per_s": rate,
        "duration_s": duration,
        "calls": n,
        "http_statuses": statuses,
        "rejected_429": statuses.get("429", 0),
        "no_push_within_s": PUSH_TIMEOUT_S,
        "no_push": no_push,
        "backlog_drained_after_s": drained_s,
        "admission_control": (
            "external API's settings"
            if args.api_url
            else f"{admission_rate:g} calls/s, burst {admission_burst}"
            if admission_rate > 0
            else "off: every call is accepted (201) and queued"
        ),
        "rows": rows,
        "machine_after": machine(),
    }
    emit(
        "overload",
        result,
        [
            table(
                f"overload: {rate:g} calls/s ({args.factor:g} x {args.sustainable:g}) for {duration:g} s",
                rows,
            ),
            f"HTTP statuses {statuses}; 429 (admission control: {result['admission_control']}): "
            f"{statuses.get('429', 0)}; "
            f"last push {drained_s:.1f} s after the burst began",
        ],
        args.json_out,
    )
    return result


def main() -> None:
    p = parser("overload burst")
    p.add_argument("--sustainable", type=float, default=10.0, help="sustainable calls/s (default 10)")
    p.add_argument("--factor", type=float, default=5.0, help="burst = factor x sustainable (default 5)")
    p.add_argument("--duration", type=float, help="burst seconds (default 10, --quick 5)")
    p.add_argument(
        "--admission-rate",
        type=float,
        help="embedded API's admission_rate_per_s (default: --sustainable; 0: no admission control)",
    )
    p.add_argument(
        "--admission-burst", type=int, help="embedded API's admission_burst (default: one second's worth)"
    )
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

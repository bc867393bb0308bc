"""Benchmark 1: call setup latency.

ringflow: ``POST /v1/calls`` (backend API key) until the ``incoming_call`` push arrives
at the first resident's WebSocket (:class:`~ringflow.client.PartyClient`), open loop at
1, 5, 10 and 20 calls/s for ``--duration`` seconds each (default 30, ``--quick`` 5).
Beside it the bare-Temporal baseline: ``start_workflow`` until the first activity starts,
at the same rates, on the same dev server, measured right after each ringflow step.
Target: ringflow p99 <= 1.5 x bare p99 at 10 calls/s.

Residents never answer: each call rings one resident for ``RING_TIMEOUT_S`` and ends
with ``timeout``; units are used round robin, so a unit comes back only after
``UNITS / rate`` seconds (its line is free again by then).

``python -m bench.setup_latency [--quick] [--rates 1,5,10,20] [--duration S]``
"""

from __future__ import annotations

import asyncio
import time
import uuid
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
    paced,
    parser,
    settle,
    summary_ms,
    table,
)

RING_TIMEOUT_S = 3.0
"""Ring timeout of every benchmark call, seconds (the calls end by themselves)."""

UNITS = 200
"""Units (one connected resident each) used round robin."""

PUSH_TIMEOUT_S = 30.0
"""A push that has not arrived after this many seconds counts as failed."""


async def ringflow_at_rate(
    bench: Bench,
    waiter: PushWaiter,
    devices: list[str],
    units: list[tuple[str, str]],
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """Open-loop calls at ``rate``/s for ``duration`` s; setup latencies (POST -> push at
    the socket) and POST response times, failures by kind."""
    setup: list[float] = []
    post: list[float] = []
    failures: dict[str, int] = {}
    offset = int(time.monotonic() * 7) % len(units)

    async def one(i: int) -> None:
        unit_id, _ = units[(offset + i) % len(units)]
        call_id = f"bl-{bench.run_id}-{uuid.uuid4().hex[:12]}"
        fut = waiter.expect(call_id, "incoming_call")
        t0 = time.monotonic()
        try:
            r = await bench.backend.place_call(
                call_body(devices[i % len(devices)], unit_id, RING_TIMEOUT_S), call_id
            )
            post.append(time.monotonic() - t0)
            if r.status_code >= 300:
                failures[f"http {r.status_code}"] = failures.get(f"http {r.status_code}", 0) + 1
                return
            msg = await asyncio.wait_for(fut, PUSH_TIMEOUT_S)
            setup.append(msg.received_at - t0)
        except TimeoutError:
            failures["no push"] = failures.get("no push", 0) + 1
        except Exception as e:
            failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
        finally:
            waiter.forget(call_id)

    started = await paced(rate, duration, one, grace_s=PUSH_TIMEOUT_S + 10)
    return {"started": started, "setup": setup, "post": post, "failures": failures}


async def run(args: Any) -> dict[str, Any]:
    rates = [float(r) for r in args.rates.split(",")]
    duration = args.duration if args.duration else (5.0 if args.quick else 30.0)
    rows: list[dict[str, Any]] = []
    async with open_bench("setup", args) as bench:
        directory = await load_directory(bench, UNITS, 1, ring_timeout_s=RING_TIMEOUT_S)
        units = [(u, rs[0]) for u, rs in directory.units.items()]
        waiter = PushWaiter()
        clients = await connect_residents(bench, [r for _, r in units], waiter.handler)
        try:
            async with BareBaseline(bench.client) as bare:
                # warm up both paths (imports, caches, connections)
                await ringflow_at_rate(bench, waiter, directory.devices, units, 2, 2)
                await bare.latency_at_rate(2, 2)
                await asyncio.sleep(RING_TIMEOUT_S + 2)
                for rate in rates:
                    info(f"[setup] ringflow at {rate:g} calls/s for {duration:g} s ...")
                    load_before = machine()["loadavg"][0]
                    rf = await ringflow_at_rate(bench, waiter, directory.devices, units, rate, duration)
                    await asyncio.sleep(RING_TIMEOUT_S + 2)  # let them time out: lines free
                    drain_s = await settle(bench.worker_pid)  # the worker's backlog is done
                    info(f"[setup] bare Temporal at {rate:g} workflows/s for {duration:g} s ...")
                    lat, bare_failed = await bare.latency_at_rate(rate, duration)
                    r_s, b_s = summary_ms(rf["setup"]), summary_ms(lat)
                    rows.append(
                        {
                            "rate_per_s": rate,
                            "rf_n": r_s["n"],
                            "rf_failed": sum(rf["failures"].values()),
                            "rf_p50_ms": r_s["p50_ms"],
                            "rf_p95_ms": r_s["p95_ms"],
                            "rf_p99_ms": r_s["p99_ms"],
                            "post_p50_ms": summary_ms(rf["post"])["p50_ms"],
                            "post_p99_ms": summary_ms(rf["post"])["p99_ms"],
                            "bare_n": b_s["n"],
                            "bare_failed": bare_failed,
                            "bare_p50_ms": b_s["p50_ms"],
                            "bare_p95_ms": b_s["p95_ms"],
                            "bare_p99_ms": b_s["p99_ms"],
                            "p99_ratio": r_s["p99_ms"] / b_s["p99_ms"] if b_s["n"] else float("nan"),
                            "load1": load_before,
                            "drain_s": drain_s,
                            "failures": rf["failures"],
                        }
                    )
                    await asyncio.sleep(1.0)
        finally:
            await close_all(clients)
    at10 = next((r for r in rows if r["rate_per_s"] == 10), None)
    verdict = None
    if at10 is not None:
        verdict = "met" if at10["p99_ratio"] <= 1.5 else "missed"
    result = {
        "duration_s": duration,
        "ring_timeout_s": RING_TIMEOUT_S,
        "units": UNITS,
        "rows": rows,
        "target": "ringflow p99 <= 1.5 x bare p99 at 10 calls/s",
        "target_result": verdict,
        "machine_after": machine(),
    }
    cols = [c for c in rows[0] if c != "failures"] if rows else None
    emit(
        "setup_latency",
        result,
        [table_text(rows, cols), f"target (p99 ratio <= 1.5 at 10/s): {verdict}"],
        args.json_out,
    )
    return result


def table_text(rows: list[dict[str, Any]], cols: list[str] | None) -> str:
    """The result rows as a Markdown table."""
    return table(
        "call setup: POST /v1/calls -> incoming_call at the socket vs bare start -> activity", rows, cols
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "setup latency")
    p.add_argument("--rates", default="1,5,10,20", help="calls per second, comma separated")
    p.add_argument("--duration", type=float, help="seconds per rate (default 30, --quick 5)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

"""Benchmark 2: escalation throughput at saturation.

Each building call rings a unit's three residents in sequence with a ring timeout of
``RING_TIMEOUT_S``: A and B (offline) time out, C (a connected
:class:`~ringflow.client.PartyClient`) answers on its ``incoming_call`` and hangs up at
once; the call is done when C's socket gets ``call_ended``. ``--concurrency`` loops
(default 16, ``--quick`` 8), each on its own unit, place calls back to back for
``--duration`` seconds (default 60, quick 30).

Reported: building calls completed per second, worker CPU ms per building call
(``/proc/<worker pid>/stat`` utime+stime over the window), workflow tasks per
building call (counted in the histories of one call and its rooms), and the ratio of
ringflow's workflow tasks/s to the bare baseline's (closed loop of trivial
start -> activity -> end workflows, same concurrency, same dev server, same run).

``python -m bench.escalation [--quick] [--concurrency N] [--duration S]``
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.common import (
    BareBaseline,
    Bench,
    PushWaiter,
    call_body,
    close_all,
    connect_residents,
    cpu_s,
    emit,
    info,
    load_directory,
    machine,
    open_bench,
    parser,
    summary_ms,
    table,
)
from ringflow.client import PartyClient, Received

RING_TIMEOUT_S = 1.0
"""Ring timeout per resident, seconds (A and B each ring this long)."""

CALL_TIMEOUT_S = 60.0
"""A building call not over after this many seconds counts as failed."""


async def workflow_tasks(bench: Bench, call_id: str) -> dict[str, int]:
    """Workflow tasks completed, activities scheduled and timers started by the building
    call ``call_id`` and its rooms (from their Temporal histories)."""
    counts = {"workflow_tasks": 0, "activities": 0, "timers": 0, "workflows": 0}
    ids = [call_id]
    while ids:
        wf_id = ids.pop()
        counts["workflows"] += 1
        history = await bench.client.get_workflow_handle(wf_id).fetch_history()
        for ev in history.events:
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                counts["workflow_tasks"] += 1
            elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                counts["activities"] += 1
            elif ev.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                counts["timers"] += 1
            elif ev.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                ids.append(ev.start_child_workflow_execution_initiated_event_attributes.workflow_id)
    return counts


async def run(args: Any) -> dict[str, Any]:
    conc = args.concurrency or (8 if args.quick else 16)
    duration = args.duration or (30.0 if args.quick else 60.0)
    async with open_bench("escalation", args) as bench:
        directory = await load_directory(bench, conc, 3, ring_timeout_s=RING_TIMEOUT_S)
        waiter = PushWaiter()

        async def answer_then_hang_up(client: PartyClient, msg: Received) -> None:
            await waiter.handler(client, msg)
            if msg.type == "incoming_call":
                r = await client.action(str(msg.call_id), "answer")
                if r.status_code == 200:
                    await client.action(str(msg.call_id), "hang-up")

        c_ids = [rs[2] for rs in directory.units.values()]
        clients = await connect_residents(bench, c_ids, answer_then_hang_up)
        durations: list[float] = []
        failed = 0
        sample: str | None = None
        try:
            deadline = 0.0
            phase = "w"

            async def loop(k: int, unit_id: str) -> None:
                nonlocal failed, sample
                i = 0
                while time.monotonic() < deadline:
                    call_id = f"esc-{bench.run_id}-{phase}{k}-{i}"
                    i += 1
                    fut = waiter.expect(call_id, "call_ended")
                    t0 = time.monotonic()
                    try:
                        r = await bench.backend.place_call(
                            call_body(directory.devices[k % len(directory.devices)], unit_id, RING_TIMEOUT_S),
                            call_id,
                        )
                        r.raise_for_status()
                        await asyncio.wait_for(fut, CALL_TIMEOUT_S)
                        durations.append(time.monotonic() - t0)
                        sample = sample or call_id
                    except Exception as e:
                        failed += 1
                        info(f"  escalation call {call_id} failed: {e!r}")
                    finally:
                        waiter.forget(call_id)
                    await asyncio.sleep(0.3)  # the room's finish releases C's line

            # warm-up: one call per loop
            deadline = time.monotonic() + 0.1
            await asyncio.gather(*(loop(k, u) for k, u in enumerate(directory.units)))
            durations.clear()
            failed = 0
            phase = "m"
            info(f"[escalation] {conc} loops for {duration:g} s ...")
            assert bench.worker_pid is not None
            c0 = cpu_s(bench.worker_pid)
            t0 = time.monotonic()
            deadline = t0 + duration
            await asyncio.wait_for(
                asyncio.gather(*(loop(k, u) for k, u in enumerate(directory.units))),
                duration + CALL_TIMEOUT_S + 30,
            )
            elapsed = time.monotonic() - t0
            worker_cpu = cpu_s(bench.worker_pid) - c0
            completed = len(durations)
            tasks = await workflow_tasks(bench, sample) if sample else {}
            sample_view = await bench.backend.call(sample) if sample else {}
            async with BareBaseline(bench.client) as bare:
                info(f"[escalation] bare baseline: {conc} loops for {min(duration, 30.0):g} s ...")
                base = await bare.saturated_tasks_per_s(conc, min(duration, 30.0))
        finally:
            await close_all(clients)
    calls_per_s = completed / elapsed
    wft = tasks.get("workflow_tasks", 0)
    rf_tasks_per_s = calls_per_s * wft
    rows = [
        {
            "what": "ringflow building calls (A, B timeout 1 s; C answers)",
            "completed": completed,
            "failed": failed,
            "per_s": calls_per_s,
            "wf_tasks_each": wft,
            "wf_tasks_per_s": rf_tasks_per_s,
            "worker_cpu_ms_each": worker_cpu * 1000 / max(1, completed),
        },
        {
            "what": "bare workflows (start -> activity -> end)",
            "completed": round(base["workflows_per_s"] * base["elapsed_s"]),
            "failed": 0,
            "per_s": base["workflows_per_s"],
            "wf_tasks_each": 2,
            "wf_tasks_per_s": base["workflow_tasks_per_s"],
            "worker_cpu_ms_each": float("nan"),
        },
    ]
    result = {
        "concurrency": conc,
        "duration_s": elapsed,
        "ring_timeout_s": RING_TIMEOUT_S,
        "call_duration": summary_ms(durations),
        "sample_call": sample,
        "sample_end_reason": sample_view.get("end_reason") if sample_view else None,
        "sample_events": [e["name"] for e in sample_view.get("events", [])] if sample_view else [],
        "history_counts": tasks,
        "worker_cpu_s": worker_cpu,
        "worker_cpu_share": worker_cpu / elapsed,
        "wf_tasks_ratio_to_bare": rf_tasks_per_s / base["workflow_tasks_per_s"],
        "rows": rows,
        "machine_after": machine(),
    }
    emit(
        "escalation",
        result,
        [
            table(f"escalation throughput at saturation ({conc} concurrent calls)", rows),
            f"building call duration p50 {summary_ms(durations)['p50_ms']:.0f} ms "
            f"(2 x {RING_TIMEOUT_S:g} s "
            f"ring timeouts included); per call: {tasks}; worker busy {100 * worker_cpu / elapsed:.0f} % of "
            f"a core; ringflow wf tasks/s / bare wf tasks/s = {result['wf_tasks_ratio_to_bare']:.2f}",
        ],
        args.json_out,
    )
    return result


def main() -> None:
    p = parser("escalation throughput")
    p.add_argument("--concurrency", type=int, help="building calls in flight (default 16, --quick 8)")
    p.add_argument("--duration", type=float, help="seconds (default 60, --quick 30)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

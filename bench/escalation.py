"""Benchmark 2: escalation throughput at saturation.

Each building call rings a unit's three residents in sequence with a ring timeout of
``RING_TIMEOUT_S``: A and B (offline) time out, C (a connected
:class:`~ringflow.client.PartyClient`) answers on its ``incoming_call``, talks ``TALK_S``
(1 s) and hangs up; the call is done when C's socket gets ``call_ended``. ``--concurrency``
loops (default 16, ``--quick`` 8), each on its own unit, place calls back to back for
``--duration`` seconds (default 60, quick 30).

Reported: building calls completed per second, worker CPU ms per building call
(``/proc/<worker pid>/stat`` utime+stime over the window), and per building call, from the
Temporal histories of ``SAMPLES`` calls (:func:`bench.history_stats.history_stats`): workflow
tasks, activities, local activities, timers, updates, signals and Temporal Cloud billable
Actions. A building call's histories are its workflow's (id = the call id) and, only if it
started child workflows (the EscalationWorkflow + CallWorkflow rooms ``<call_id>.<n>`` shape),
theirs; a single-workflow building call (BuildingCallWorkflow, no children) is one history.
Compared with the bare baseline (closed loop of trivial start -> activity -> end workflows,
same concurrency, same dev server, same run): building calls/s over bare workflows/s, and
ringflow's workflow tasks/s over the bare baseline's.

``python -m bench.escalation [--quick] [--concurrency N] [--duration S]``
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHistory

from bench.common import (
    BareBaseline,
    BareWorkflow,
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
from bench.history_stats import HistoryStats, child_executions, history_stats
from ringflow.client import PartyClient, Received

RING_TIMEOUT_S = 1.0
"""Ring timeout per resident, seconds (A and B each ring this long)."""

TALK_S = 1.0
"""How long C talks between answering and hanging up, seconds."""

CALL_TIMEOUT_S = 60.0
"""A building call not over after this many seconds counts as failed."""

SAMPLES = 3
"""Building calls of the measured window whose histories are counted."""

CLOSE_TIMEOUT_S = 30.0
"""How long to wait for a sample call's workflow to close before reading its history."""


async def call_histories(client: Client, call_id: str) -> list[WorkflowHistory]:
    """The Temporal histories of building call ``call_id``: its workflow's (workflow id =
    ``call_id``, latest run) and, only if that history started child workflows, theirs (the
    exact runs, recursively). Waits up to ``CLOSE_TIMEOUT_S`` for the call's workflow to close
    first (``call_ended`` may reach C before the workflow's last activities ran)."""
    handle = client.get_workflow_handle(call_id)
    try:
        await asyncio.wait_for(handle.result(), CLOSE_TIMEOUT_S)
    except TimeoutError:
        info(f"  [escalation] {call_id} still running after {CLOSE_TIMEOUT_S:g} s: history so far")
    except Exception as e:  # failed/terminated: its history still counts
        info(f"  [escalation] {call_id} did not complete: {e!r}")
    histories = [await handle.fetch_history()]
    todo = child_executions(histories[0])
    while todo:
        wf_id, run_id = todo.pop(0)
        child = await client.get_workflow_handle(wf_id, run_id=run_id or None).fetch_history()
        histories.append(child)
        todo.extend(child_executions(child))
    return histories


async def bare_history_stats(bare: BareBaseline) -> HistoryStats:
    """Counts of one run of the bare baseline workflow (start -> activity -> end)."""
    handle = await bare.client.start_workflow(
        BareWorkflow.run, id=f"bare-stats-{uuid.uuid4().hex}", task_queue=bare.task_queue
    )
    await asyncio.wait_for(handle.result(), 30.0)
    return history_stats(await handle.fetch_history())


def stats_row(what: str, st: HistoryStats) -> dict[str, Any]:
    """A row of the per-call table."""
    return {
        "what": what,
        "workflows": st.histories,
        "wf_tasks": st.workflow_tasks,
        "activities": st.activities,
        "local_activities": st.local_activities,
        "timers": st.timers,
        "updates": st.updates,
        "signals_in": st.signals_received,
        "signals_out": st.signals_sent,
        "children": st.child_workflows,
        "sa_upserts": st.search_attribute_upserts,
        "billable_actions": st.billable_actions,
    }


async def run(args: Any) -> dict[str, Any]:
    conc = args.concurrency or (8 if args.quick else 16)
    duration = args.duration or (30.0 if args.quick else 60.0)
    async with open_bench("escalation", args) as bench:
        directory = await load_directory(bench, conc, 3, ring_timeout_s=RING_TIMEOUT_S)
        waiter = PushWaiter()

        async def answer_talk_hang_up(client: PartyClient, msg: Received) -> None:
            # on_message runs in its own task: the talk does not hold up the socket
            await waiter.handler(client, msg)
            if msg.type == "incoming_call":
                r = await client.action(str(msg.call_id), "answer")
                if r.status_code == 200:
                    await asyncio.sleep(TALK_S)
                    await client.action(str(msg.call_id), "hang-up")

        c_ids = [rs[2] for rs in directory.units.values()]
        clients = await connect_residents(bench, c_ids, answer_talk_hang_up)
        durations: list[float] = []
        failed = 0
        samples: list[str] = []
        try:
            deadline = 0.0
            phase = "w"

            async def loop(k: int, unit_id: str) -> None:
                nonlocal failed
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
                        if len(samples) < SAMPLES:
                            samples.append(call_id)
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
            samples.clear()
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
            per_call = [history_stats(*await call_histories(bench.client, s)) for s in samples]
            sample = samples[0] if samples else None
            sample_view = await bench.backend.call(sample) if sample else {}
            async with BareBaseline(bench.client) as bare:
                info(f"[escalation] bare baseline: {conc} loops for {min(duration, 30.0):g} s ...")
                base = await bare.saturated_tasks_per_s(conc, min(duration, 30.0))
                bare_st = await bare_history_stats(bare)
        finally:
            await close_all(clients)

    def mean(values: list[int]) -> float:
        return statistics.fmean(values) if values else float("nan")

    calls_per_s = completed / elapsed
    wft = mean([st.workflow_tasks for st in per_call])
    billable = mean([st.billable_actions for st in per_call])
    rf_tasks_per_s = calls_per_s * wft
    rows = [
        {
            "what": f"ringflow building calls (A, B time out {RING_TIMEOUT_S:g} s; "
            f"C answers, talks {TALK_S:g} s)",
            "completed": completed,
            "failed": failed,
            "per_s": calls_per_s,
            "wf_tasks_each": wft,
            "wf_tasks_per_s": rf_tasks_per_s,
            "billable_each": billable,
            "billable_per_s": calls_per_s * billable,
            "worker_cpu_ms_each": worker_cpu * 1000 / max(1, completed),
        },
        {
            "what": "bare workflows (start -> activity -> end)",
            "completed": round(base["workflows_per_s"] * base["elapsed_s"]),
            "failed": 0,
            "per_s": base["workflows_per_s"],
            "wf_tasks_each": bare_st.workflow_tasks,
            "wf_tasks_per_s": base["workflow_tasks_per_s"],
            "billable_each": bare_st.billable_actions,
            "billable_per_s": base["workflows_per_s"] * bare_st.billable_actions,
            "worker_cpu_ms_each": float("nan"),
        },
    ]
    count_rows = [stats_row(f"building call {s}", st) for s, st in zip(samples, per_call, strict=True)]
    count_rows.append(stats_row("bare workflow", bare_st))
    calls_ratio = calls_per_s / base["workflows_per_s"] if base["workflows_per_s"] else float("nan")
    tasks_ratio = (
        rf_tasks_per_s / base["workflow_tasks_per_s"] if base["workflow_tasks_per_s"] else float("nan")
    )
    result = {
        "concurrency": conc,
        "duration_s": elapsed,
        "ring_timeout_s": RING_TIMEOUT_S,
        "talk_s": TALK_S,
        "call_duration": summary_ms(durations),
        "sample_calls": samples,
        "sample_end_reason": sample_view.get("end_reason") if sample_view else None,
        "sample_events": [e["name"] for e in sample_view.get("events", [])] if sample_view else [],
        "history_counts": [st.as_dict() for st in per_call],
        "bare_history_counts": bare_st.as_dict(),
        "worker_cpu_s": worker_cpu,
        "worker_cpu_share": worker_cpu / elapsed,
        "calls_per_s_ratio_to_bare": calls_ratio,
        "wf_tasks_ratio_to_bare": tasks_ratio,
        "rows": rows,
        "count_rows": count_rows,
        "machine_after": machine(),
    }
    first = per_call[0].format() if per_call else "no call completed"
    emit(
        "escalation",
        result,
        [
            table(f"escalation throughput at saturation ({conc} concurrent calls)", rows),
            table(
                "per building call, from its Temporal histories (billable: Temporal Cloud Actions, "
                "https://docs.temporal.io/cloud/actions)",
                count_rows,
            ),
            f"building call duration p50 {summary_ms(durations)['p50_ms']:.0f} ms "
            f"(2 x {RING_TIMEOUT_S:g} s ring timeouts and {TALK_S:g} s talk included); "
            f"per call: {first}; billable by kind: {per_call[0].billable if per_call else {}}; "
            f"worker busy {100 * worker_cpu / elapsed:.0f} % of a core; "
            f"building calls/s / bare workflows/s = {calls_ratio:.2f}; "
            f"ringflow wf tasks/s / bare wf tasks/s = {tasks_ratio:.2f}",
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

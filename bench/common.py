"""Shared pieces of the benchmarks: the stack, a synthetic directory, a bare-Temporal
baseline, /proc readings, percentiles and output (table + JSON).

Every benchmark either starts its own :class:`~ringflow.stack.embedded.EmbeddedStack`
(fresh data dir under ``<data_dir>/bench-<name>``, free loopback ports, headless) or
uses an external ringflow given by ``--api-url``, ``--temporal-address`` and
``--database-url``. All times are seconds unless a name ends in ``_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ringflow.client import Backend, PartyClient, Received
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import AuthorizationIn, Building, DeviceGroupIn, DeviceIn, UnitIn, UserIn
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from ringflow.contracts.tenancy import DEFAULT_TENANT
from ringflow.directory_load import load_building
from ringflow.settings import Settings, get_settings

GROUP = "bench-entrance"
"""The device group every synthetic resident authorized."""

CONNECT_CONCURRENCY = 25
"""How many residents connect their WebSocket (and get a token) at once."""


# ---------------------------------------------------------------- arguments


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares: ``--quick``, ``--json-out``
    and the external-stack addresses (without them the benchmark starts its own stack)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="the short variant (smaller counts/durations)")
    p.add_argument("--json-out", type=Path, help="also append the JSON result to this file")
    p.add_argument("--api-url", help="external ringflow API (e.g. http://127.0.0.1:8080)")
    p.add_argument("--temporal-address", help="external Temporal frontend host:port")
    p.add_argument("--database-url", help="external ringflow database (to load the synthetic directory)")
    p.add_argument("--api-key", help="backend API key of the external stack (default: settings)")
    p.add_argument("--task-queue", help="ringflow's task queue on the external stack (default: settings)")
    p.add_argument("--worker-pid", type=int, help="pid of the external stack's worker (for /proc readings)")
    return p


# ---------------------------------------------------------------- the stack


@dataclass
class Bench:
    """A running ringflow to benchmark: its API, backend client, Temporal client, database
    pool (for the synthetic directory) and, when known, the worker's pid."""

    name: str
    settings: Settings
    api_url: str
    client: Client
    pool: asyncpg.Pool
    backend: Backend
    worker_pid: int | None
    api_pid: int | None = None
    temporal_pid: int | None = None
    stack: Any = None
    """The :class:`~ringflow.stack.embedded.EmbeddedStack` when the benchmark started its own
    (for fault injection), else None."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def api_key(self) -> str:
        return self.settings.api_key


@contextlib.asynccontextmanager
async def open_bench(name: str, args: argparse.Namespace, **overrides: object) -> AsyncIterator[Bench]:
    """The stack for benchmark ``name``: an external one when ``args.api_url`` is given,
    else a fresh headless :class:`EmbeddedStack` (``overrides``: settings for it, e.g.
    ``db_pool_max``) that is stopped on exit."""
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from ringflow.temporal import connect
    from store.db import create_pool

    if args.api_url:
        update: dict[str, object] = {}
        for key in ("temporal_address", "database_url", "api_key", "task_queue"):
            value = getattr(args, key)
            if value:
                update[key] = value
        settings = get_settings().model_copy(update=update)
        client = await connect(settings)
        pool = await create_pool(settings.database_url)
        backend = Backend(args.api_url, settings.api_key)
        try:
            yield Bench(name, settings, args.api_url, client, pool, backend, args.worker_pid)
        finally:
            await backend.aclose()
            await pool.close()
        return

    data_dir = get_settings().data_dir.resolve() / f"bench-{name}"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = EmbeddedStack(isolated_settings(data_dir, None, **overrides), ui=False)
    t0 = time.monotonic()
    async with stack:
        info(f"[{name}] embedded stack up in {time.monotonic() - t0:.1f} s ({data_dir})")
        pool = await create_pool(stack.settings.database_url)
        backend = Backend(stack.api_url, stack.settings.api_key)
        try:
            yield Bench(
                name,
                stack.settings,
                stack.api_url,
                stack.client,
                pool,
                backend,
                stack.worker.pid,
                stack.api.pid,
                stack.temporal.pid,
                stack,
            )
        finally:
            await backend.aclose()
            await pool.close()


def info(msg: str) -> None:
    """Progress to stderr (stdout carries the tables and JSON)."""
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- synthetic directory


@dataclass
class Directory:
    """What :func:`load_directory` created: caller device sns and per unit its residents
    in hunt order."""

    devices: list[str]
    units: dict[str, list[str]]


async def load_directory(
    bench: Bench,
    n_units: int,
    residents_per_unit: int = 1,
    n_devices: int = 4,
    ring_timeout_s: float = 30.0,
    prefix: str = "",
    tenant: str = DEFAULT_TENANT,
) -> Directory:
    """Create ``n_units`` units of ``residents_per_unit`` residents each (sequential policy,
    ``ring_timeout_s``), ``n_devices`` door stations in one group that every resident
    authorized, through :func:`ringflow.directory_load.load_building` (one transaction).
    Ids carry ``prefix`` + the run id so that runs against an external stack do not collide.
    ``tenant``: the tenant it is loaded into (issue 9; it must exist)."""
    tag = f"{prefix}{bench.run_id}"
    devices = [f"bench-door-{tag}-{i}" for i in range(n_devices)]
    units: dict[str, list[str]] = {}
    users: list[UserIn] = []
    auths: list[AuthorizationIn] = []
    unit_rows: list[UnitIn] = []
    policy = EscalationPolicy(strategy=RingStrategy.SEQUENTIAL, ring_timeout_s=ring_timeout_s)
    for u in range(n_units):
        uid = f"bu-{tag}-{u}"
        residents = [f"br-{tag}-{u}-{r}" for r in range(residents_per_unit)]
        units[uid] = residents
        for rid in residents:
            users.append(UserIn(id=rid, name=f"Resident {u}/{rid[-1]}"))
            auths.append(AuthorizationIn(user_id=rid, target_kind="group", target_id=GROUP))  # type: ignore[arg-type]
        unit_rows.append(UnitIn(id=uid, name=f"Unit {u}", residents=residents, policy=policy))
    building = Building(
        groups=[DeviceGroupIn(id=GROUP, name="Bench entrance")],
        devices=[
            DeviceIn(
                sn=sn,
                name=f"Bench door {i}",
                group_id=GROUP,
                voip_token_expires_at="2099-01-01T00:00:00Z",  # type: ignore[arg-type]
            )
            for i, sn in enumerate(devices)
        ],
        users=users,
        units=unit_rows,
        authorizations=auths,
    )
    t0 = time.monotonic()
    counts = await load_building(bench.pool, building, tenant)
    info(f"[{bench.name}] directory loaded in {time.monotonic() - t0:.1f} s: {counts}")
    return Directory(devices, units)


def user(uid: str) -> Party:
    return Party(kind=PartyKind.USER, id=uid)


def device(sn: str) -> Party:
    return Party(kind=PartyKind.DEVICE, id=sn)


def call_body(caller_sn: str, unit_id: str, ring_timeout_s: float, rounds: int = 1) -> dict[str, Any]:
    """``POST /v1/calls`` body: ``caller_sn`` rings ``unit_id`` sequentially, each resident for
    ``ring_timeout_s`` seconds, ``rounds`` times, voice room."""
    return {
        "caller": device(caller_sn).model_dump(mode="json"),
        "unit_id": unit_id,
        "room_type": "voice",
        "policy": {"strategy": "sequential", "ring_timeout_s": ring_timeout_s, "rounds": rounds},
    }


# ---------------------------------------------------------------- residents on sockets


class PushWaiter:
    """Futures for push frames: ``expect(call_id, type)`` before placing the call, then
    ``await`` it for the :class:`Received` (``received_at`` = ``time.monotonic()``).
    Use :meth:`handler` as every PartyClient's ``on_message``."""

    def __init__(self) -> None:
        self._futures: dict[tuple[str, str], asyncio.Future[Received]] = {}
        self.unexpected = 0

    def expect(self, call_id: str, type_: str) -> asyncio.Future[Received]:
        key = (call_id, type_)
        fut = self._futures.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._futures[key] = fut
        return fut

    async def handler(self, client: PartyClient, msg: Received) -> None:
        key = (str(msg.call_id), msg.type)
        fut = self._futures.get(key)
        if fut is None:
            self.unexpected += 1
            fut = asyncio.get_running_loop().create_future()
            self._futures[key] = fut
        if not fut.done():
            fut.set_result(msg)

    def forget(self, call_id: str) -> None:
        for key in [k for k in self._futures if k[0] == call_id]:
            del self._futures[key]


async def connect_residents(
    bench: Bench,
    user_ids: Sequence[str],
    on_message: Callable[[PartyClient, Received], Awaitable[None]] | None,
) -> dict[str, PartyClient]:
    """A token and a connected push WebSocket (:class:`PartyClient`) for each of
    ``user_ids`` (``CONNECT_CONCURRENCY`` at a time); close them with :func:`close_all`."""
    clients: dict[str, PartyClient] = {}
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(uid: str) -> None:
        async with sem:
            token = await bench.backend.token(user(uid))
            client = PartyClient(bench.api_url, user(uid), token, on_message=on_message)  # type: ignore[arg-type]
            await client.start(timeout=30.0)
            clients[uid] = client

    t0 = time.monotonic()
    await asyncio.gather(*(one(u) for u in user_ids))
    info(f"[{bench.name}] {len(clients)} residents connected in {time.monotonic() - t0:.1f} s")
    return clients


async def close_all(clients: dict[str, PartyClient]) -> None:
    """Close every client (bounded: 30 s in all)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients.values())), 30.0)


# ---------------------------------------------------------------- pacing


async def paced(
    rate_per_s: float,
    duration_s: float,
    fn: Callable[[int], Coroutine[Any, Any, None]],
    grace_s: float = 60.0,
) -> int:
    """Run ``fn(i)`` at ``rate_per_s`` (open loop: the i-th at t0 + i/rate, whether or not
    earlier ones finished) for ``duration_s``; wait up to ``grace_s`` more for them to
    finish (the rest are cancelled). Returns how many were started."""
    n = max(1, round(rate_per_s * duration_s))
    t0 = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for i in range(n):
        delay = t0 + i / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fn(i)))
    done, pending = await asyncio.wait(tasks, timeout=grace_s)
    for t in pending:
        t.cancel()
    for t in done:
        if t.exception() is not None:
            info(f"  task failed: {t.exception()!r}")
    return n


# ---------------------------------------------------------------- bare-Temporal baseline


_BARE_STARTED: dict[str, asyncio.Future[float]] = {}


@activity.defn(name="bench_bare_mark")
async def bare_mark() -> None:
    """The bare workflow's first (and only) activity: notes ``time.monotonic()`` of its start."""
    fut = _BARE_STARTED.get(activity.info().workflow_id or "")
    if fut is not None and not fut.done():
        fut.set_result(time.monotonic())


@workflow.defn(name="BenchBareWorkflow", sandboxed=False)
class BareWorkflow:
    """The baseline: a workflow whose first step is an activity, then it ends
    (2 workflow tasks, 1 activity task)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(bare_mark, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BenchBareTimerWorkflow", sandboxed=False)
class BareTimerWorkflow:
    """The ring-timer baseline: sleep ``delay_s`` seconds on a durable timer; returns how
    late the workflow task after the timer ran (``workflow.now()`` minus start + delay), seconds."""

    @workflow.run
    async def run(self, delay_s: float) -> float:
        start = workflow.now()
        await workflow.sleep(delay_s)
        return (workflow.now() - start).total_seconds() - delay_s


BARE_WORKFLOW_TASKS = 2
"""Workflow tasks per bare workflow run (start; activity completed)."""


class BareBaseline:
    """A worker in this (the benchmark's) process on its own task queue of the same dev
    server, running :class:`BareWorkflow`. ``async with BareBaseline(client) as bare:``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self._worker = Worker(
            client,
            task_queue=self.task_queue,
            workflows=[BareWorkflow, BareTimerWorkflow],
            activities=[bare_mark],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        self._run: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BareBaseline:
        self._run = asyncio.create_task(self._worker.run())
        await self.start_to_activity(timeout_s=30.0)  # warm up: the worker polls
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._worker.shutdown(), 15.0)
        if self._run is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._run, 5.0)

    async def start_to_activity(self, timeout_s: float = 30.0) -> float:
        """Start one bare workflow; seconds from before ``start_workflow`` to its activity's
        start. Raises ``TimeoutError`` after ``timeout_s``."""
        wf_id = f"bare-{uuid.uuid4().hex}"
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        _BARE_STARTED[wf_id] = fut
        try:
            t0 = time.monotonic()
            await self.client.start_workflow(BareWorkflow.run, id=wf_id, task_queue=self.task_queue)
            return await asyncio.wait_for(fut, timeout_s) - t0
        finally:
            _BARE_STARTED.pop(wf_id, None)

    async def run_one(self, timeout_s: float = 30.0) -> None:
        """Start one bare workflow and wait for its result."""
        handle = await self.client.start_workflow(
            BareWorkflow.run, id=f"bare-{uuid.uuid4().hex}", task_queue=self.task_queue
        )
        await asyncio.wait_for(handle.result(), timeout_s)

    async def timer_lateness(self, delays_s: Sequence[float], timeout_s: float) -> list[float]:
        """Start one :class:`BareTimerWorkflow` per delay (seconds, from now), 50 starts at a
        time; the lateness of each (seconds) that finished within ``timeout_s``."""
        sem = asyncio.Semaphore(50)
        t0 = time.monotonic()

        async def one(delay: float) -> float | None:
            async with sem:
                remaining = delay - (time.monotonic() - t0)
                handle = await self.client.start_workflow(
                    BareTimerWorkflow.run,
                    max(0.5, remaining),
                    id=f"bare-timer-{uuid.uuid4().hex}",
                    task_queue=self.task_queue,
                )
            try:
                return await asyncio.wait_for(handle.result(), timeout_s)
            except Exception:
                return None

        results = await asyncio.gather(*(one(d) for d in delays_s))
        return [r for r in results if r is not None]

    async def latency_at_rate(self, rate_per_s: float, duration_s: float) -> tuple[list[float], int]:
        """Open-loop starts at ``rate_per_s`` for ``duration_s``: (start -> activity seconds of
        each that made it, number that failed or timed out)."""
        lat: list[float] = []
        failed = 0

        async def one(_: int) -> None:
            nonlocal failed
            try:
                lat.append(await self.start_to_activity())
            except Exception:
                failed += 1

        await paced(rate_per_s, duration_s, one)
        return lat, failed

    async def saturated_tasks_per_s(self, concurrency: int, duration_s: float) -> dict[str, float]:
        """Closed loop: ``concurrency`` clients each start-and-await bare workflows for
        ``duration_s``; completed workflows/s and workflow tasks/s."""
        done = 0
        deadline = time.monotonic() + duration_s

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    await self.run_one()
                    done += 1

        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
        return {
            "workflows_per_s": done / elapsed,
            "workflow_tasks_per_s": done * BARE_WORKFLOW_TASKS / elapsed,
            "elapsed_s": elapsed,
        }


# ---------------------------------------------------------------- /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``, bytes (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def settle(pid: int | None, limit_s: float = 180.0, busy_share: float = 0.05) -> float:
    """Wait until process ``pid`` uses less than ``busy_share`` of a core over 2 s (a backlog
    has drained), at most ``limit_s`` seconds; returns the seconds waited (0 without a pid)."""
    t0 = time.monotonic()
    if pid is None:
        return 0.0
    while time.monotonic() - t0 < limit_s:
        c0 = cpu_s(pid)
        await asyncio.sleep(2.0)
        if (cpu_s(pid) - c0) / 2.0 < busy_share:
            break
    return time.monotonic() - t0


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``)."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    """Cores and load, to print beside every result (the machine is shared)."""
    return {"cores": os.cpu_count(), "loadavg": loadavg()}


# ---------------------------------------------------------------- statistics + output


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest-rank; NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99, max and mean of ``values_s`` (seconds) in milliseconds."""
    return {
        "n": len(values_s),
        "p50_ms": pct(values_s, 50) * 1000,
        "p95_ms": pct(values_s, 95) * 1000,
        "p99_ms": pct(values_s, 99) * 1000,
        "max_ms": (max(values_s) * 1000) if values_s else math.nan,
        "mean_ms": (statistics.fmean(values_s) * 1000) if values_s else math.nan,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.1f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as a Markdown table under ``title`` (columns: the first row's keys)."""
    if not rows:
        return f"### {title}\n(no rows)\n"
    cols = list(columns or rows[0].keys())
    lines = [f"### {title}", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def emit(name: str, result: dict[str, Any], tables: Sequence[str], json_out: Path | None) -> None:
    """Print the tables, then the result as one JSON line prefixed ``BENCH_JSON``, and
    append that line to ``json_out`` if given."""
    for t in tables:
        print(t)
    line = json.dumps({"bench": name, **result}, default=str, allow_nan=True)
    print("BENCH_JSON " + line, flush=True)
    if json_out is not None:
        with json_out.open("a") as f:
            f.write(line + "\n")

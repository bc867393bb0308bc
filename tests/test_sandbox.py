"""The worker's workflow runner (ringflow/sandbox.py): what it still refuses, what only the
strict sandbox refuses, and that a Worker takes it.

The determinism checks replay a one-task history (no server): a workflow that the
sandbox refuses fails that task, which the Replayer reports as a replay failure. The lean
runner passes ringflow's packages through; the workflows here stand for a module of the
``workflows`` package by passing this module through too (``extra_passthrough``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

with workflow.unsafe.imports_passed_through():  # as a workflows module imports ringflow
    from ringflow.sandbox import PASSTHROUGH_MODULES, strict_workflow_runner, workflow_runner
    from ringflow.temporal import DATA_CONVERTER


@workflow.defn(name="SandboxReadsWallClock")
class ReadsWallClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()  # non-deterministic: workflow.now() is the right call


@workflow.defn(name="SandboxOpensFile")
class OpensFile:
    @workflow.run
    async def run(self) -> str:
        with open(__file__) as f:  # noqa: ASYNC230  (the point: I/O in workflow code)
            return f.read(1)


@workflow.defn(name="SandboxImportsTime")
class ImportsTime:
    @workflow.run
    async def run(self) -> float:
        import time  # imported while the workflow runs: the sandbox's restricted proxy

        return time.time()


@workflow.defn(name="SandboxDeterministic")
class Deterministic:
    @workflow.run
    async def run(self) -> str:
        return workflow.now().isoformat()


WORKFLOWS = [ReadsWallClock, OpensFile, ImportsTime, Deterministic]


def lean() -> WorkflowRunner:
    """The worker's runner, this module passed through as ``workflows`` is."""
    return workflow_runner(extra_passthrough=[__name__])


def one_task(workflow_type: str) -> WorkflowHistory:
    """The history of a workflow that completed in its first task (any result): replaying
    it runs that task's code, and a task that fails is a replay failure."""
    t = "2026-01-01T00:00:00Z"
    run_id = str(uuid.uuid4())
    tq = {"name": "tq-sandbox"}
    attributes: list[tuple[str, str, dict[str, object]]] = [
        (
            "WORKFLOW_EXECUTION_STARTED",
            "workflowExecutionStartedEventAttributes",
            {
                "workflowType": {"name": workflow_type},
                "taskQueue": tq,
                "workflowTaskTimeout": "10s",
                "originalExecutionRunId": run_id,
                "firstExecutionRunId": run_id,
                "attempt": 1,
            },
        ),
        (
            "WORKFLOW_TASK_SCHEDULED",
            "workflowTaskScheduledEventAttributes",
            {"taskQueue": tq, "startToCloseTimeout": "10s", "attempt": 1},
        ),
        ("WORKFLOW_TASK_STARTED", "workflowTaskStartedEventAttributes", {"scheduledEventId": "2"}),
        (
            "WORKFLOW_TASK_COMPLETED",
            "workflowTaskCompletedEventAttributes",
            {"scheduledEventId": "2", "startedEventId": "3"},
        ),
        (
            "WORKFLOW_EXECUTION_COMPLETED",
            "workflowExecutionCompletedEventAttributes",
            {"workflowTaskCompletedEventId": "4"},
        ),
    ]
    events = [
        {"eventId": str(i), "eventTime": t, "eventType": f"EVENT_TYPE_{kind}", key: attrs}
        for i, (kind, key, attrs) in enumerate(attributes, start=1)
    ]
    return WorkflowHistory.from_json(f"sandbox-{workflow_type}", {"events": events})


async def failure(runner: WorkflowRunner, workflow_type: str) -> str | None:
    """Why the first task of ``workflow_type`` fails under ``runner``; None when it runs."""
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=runner, data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(one_task(workflow_type), raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


def test_runners_are_sandboxes():
    runner = workflow_runner()
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert set(PASSTHROUGH_MODULES) <= runner.restrictions.passthrough_modules
    assert {"workflows", "ringflow"} <= set(PASSTHROUGH_MODULES)
    strict = strict_workflow_runner()
    assert isinstance(strict, SandboxedWorkflowRunner)
    assert "workflows" not in strict.restrictions.passthrough_modules


async def test_a_deterministic_workflow_runs_under_every_runner():
    for runner in (lean(), workflow_runner(), strict_workflow_runner(), UnsandboxedWorkflowRunner()):
        assert await failure(runner, "SandboxDeterministic") is None


async def test_strict_sandbox_refuses_the_wall_clock_in_workflow_code():
    why = await failure(strict_workflow_runner(), "SandboxReadsWallClock")
    assert why is not None
    assert "datetime.datetime.now" in why


async def test_lean_runner_does_not_see_the_wall_clock_in_a_passed_through_module():
    # What passing workflow modules through gives up (ringflow/sandbox.py): the module holds
    # the real datetime, so only the strict sandbox (tests, Replayer) refuses this.
    assert await failure(lean(), "SandboxReadsWallClock") is None
    # A workflow module that is not passed through is still re-imported and checked.
    assert await failure(workflow_runner(), "SandboxReadsWallClock") is not None


async def test_lean_runner_still_refuses_open_and_restricts_run_time_imports():
    for runner in (lean(), strict_workflow_runner()):
        why = await failure(runner, "SandboxOpensFile")
        assert why is not None
        assert "__builtins__.open" in why
        why = await failure(runner, "SandboxImportsTime")
        assert why is not None
        assert "time.time" in why


async def test_a_worker_takes_the_runner_and_runs_a_workflow(dev_env: WorkflowEnvironment, task_queue: str):
    from ringflow.worker import workflow_classes

    # The worker's own workflows pass its validation (Worker() prepares each in the runner).
    Worker(
        dev_env.client,
        task_queue=f"{task_queue}-real",
        workflows=workflow_classes(),
        workflow_runner=workflow_runner(),
    )
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[Deterministic], workflow_runner=lean()
    ):
        started = await dev_env.client.execute_workflow(
            Deterministic.run, id=f"sandbox-{uuid.uuid4()}", task_queue=task_queue
        )
    assert datetime.fromisoformat(started).year >= 2024

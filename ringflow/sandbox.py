"""The workflow runner of ringflow's worker: the Temporal sandbox, with ringflow's own
packages (the workflow modules included) passed through.

Measured with ``python -m bench.workflow_memory --workflows 2000`` (2026-11-30, tree
``5234e99`` with the ``workflows`` package of the rewrite in progress in the work tree,
shared 2-core machine, load ~2-4): a worker subprocess per runner, 2,000 probe workflows
cached (a ringing call's shape: a little state, a 3,600 s timer, an update; the probe's
module imports the real ``workflows`` package as a workflow module does), RSS growth per
cached workflow after a warm-up of 50:

==================  ========  ==============  ===================  ==============
runner              KiB / wf  CPU ms / start  10k / 20k cached     checks at run time
==================  ========  ==============  ===================  ==============
sandbox, default    423       14.2            4.1 / 8.2 GiB        all
sandbox, deps (1)   424       14.7            4.1 / 8.2 GiB        all
**this runner**     **64**    3.8             0.69 / 1.30 GiB      some (2)
unsandboxed         59        2.8             0.65 / 1.21 GiB      none
==================  ========  ==============  ===================  ==============

(1) ``ringflow``, ``activities``, ``store`` and ``media`` passed through, the workflow
modules still re-imported. (2) ``open``, ``input`` and ``breakpoint`` in workflow code,
modules imported while a workflow runs; not ``datetime.now()`` and the like (below).

(10k / 20k: the worker's RSS before, ~80 - 100 MiB, plus that many cached workflows.) A
second run with ``MALLOC_ARENA_MAX=2`` gave the same (65 and 62 KiB). Of the ~60 KiB that
a cached workflow costs even without a sandbox, ~26 KiB is Python objects of the SDK's
workflow instance (tracemalloc: its loop, a ``random.Random`` of 2.5 KiB, the pydantic
payload converter's type adapters, the workflow's coroutine and state); the rest is
native (the Rust core's run state) and allocator slack. Passing ``workflows`` through is
what matters: passing only the dependencies through changes nothing, as the workflow
modules already import them inside ``imports_passed_through()``.

Against issue 8's target (<= 100 KiB per cached ringing call): met when a ringing call is
one cached workflow (64 KiB), not when it is two (a building call and its room, ~128
KiB). 20,000 cached workflows under 1 GiB needs <= ~47 KiB each, below even the
unsandboxed runner's 59: the rest is the SDK's own per-workflow cost, not the sandbox's.

Why not the SDK's default sandbox: it re-imports every module that is not passed through
for every workflow instance, the workflow's own module tree first (``workflows`` and its
submodules: their code objects, classes and functions, once per cached workflow), and
that is most of a cached workflow's memory and of a new workflow's CPU. Passing
``workflows`` through imports it once for the process. Why the sandbox rather than no
sandbox: it still costs little, and it keeps the checks that do not depend on re-importing:
``open``, ``input`` and ``breakpoint`` raise in workflow code, a module imported while a
workflow runs is restricted, and the sandbox's isolation of ``sys.modules`` and its
import warnings.

What passing the workflow modules through gives up, and where it is kept instead:

* Calls such as ``datetime.now()``, ``time.time()``, ``random.random()`` or ``os``'s are
  no longer refused in workflow code at run time: a passed-through module holds the real
  ``datetime``, not the sandbox's restricted proxy. :func:`strict_workflow_runner` (the
  SDK's default sandbox) still refuses them; the tests' workers and the ``Replayer`` use
  it, so that every workflow code path the tests run is checked
  (``tests/test_sandbox.py`` shows both).
* Module-level state of a workflow module is shared by every workflow of the process
  instead of being fresh per workflow: workflow modules must keep none that changes
  (constants only; state lives on the workflow instance).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.worker import WorkflowRunner

PASSTHROUGH_MODULES = ("workflows", "ringflow", "activities", "store", "media")
"""ringflow's packages, passed through the sandbox (imported once per process): the
workflow modules (deterministic by construction, checked by the strict sandbox in the
tests), the contracts (plain data) and the activity classes that workflows name (never
run inside a workflow)."""


def workflow_runner(extra_passthrough: Iterable[str] = ()) -> WorkflowRunner:
    """The runner for ``Worker(workflow_runner=...)``: the SDK's default sandbox
    restrictions, with :data:`PASSTHROUGH_MODULES` and ``extra_passthrough`` (module
    names; a name covers its submodules) passed through."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        *PASSTHROUGH_MODULES, *extra_passthrough
    )
    return SandboxedWorkflowRunner(restrictions=restrictions)


def strict_workflow_runner() -> WorkflowRunner:
    """The SDK's default sandbox: workflow modules re-imported for every workflow, every
    restricted call in workflow code refused. For the tests' workers and the ``Replayer``,
    where memory does not matter and the checks do."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    return SandboxedWorkflowRunner()

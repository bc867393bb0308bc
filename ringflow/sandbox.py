"""The workflow runner of ringflow's worker: the Temporal sandbox, with ringflow's own
packages (the workflow modules included) passed through.

FIGURES

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

    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES, *extra_passthrough)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def strict_workflow_runner() -> WorkflowRunner:
    """The SDK's default sandbox: workflow modules re-imported for every workflow, every
    restricted call in workflow code refused. For the tests' workers and the ``Replayer``,
    where memory does not matter and the checks do."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    return SandboxedWorkflowRunner()

"""What a workflow (or a set of workflows: a building call and its rooms) cost Temporal, counted
from its event histories: workflow tasks, activities, local activities, timers, signals,
updates, child workflows, search-attribute upserts, and the Temporal Cloud billable Actions.

Pure: no client, no server. Give it :class:`temporalio.client.WorkflowHistory` objects (e.g.
``await handle.fetch_history()`` or ``WorkflowHistory.from_json(workflow_id, text)``) or bare
sequences of ``HistoryEvent`` protos (``history.events``)::

    stats = history_stats(parent_history, *child_histories)
    print(stats.format())           # one line
    json.dumps(stats.as_dict())     # every count, the billable breakdown included

Billable Actions follow Temporal Cloud's published Action list, "Temporal Cloud Actions"
(https://docs.temporal.io/cloud/actions; source ``docs/evaluate/cloud/actions.mdx`` of
github.com/temporalio/documentation, the version with the per-category tables of Usage name,
metric name and History Event Type). Each billable operation is counted once, under that
page's metric name (the keys of :attr:`HistoryStats.billable`):

========================================  ===============================================
metric (Actions)                          counted from
========================================  ===============================================
``start_workflow`` (1)                    ``WORKFLOW_EXECUTION_STARTED`` (client start,
                                          child start, Continue-As-New's new run)
``signal_workflow_with_start`` (1)        ``WORKFLOW_EXECUTION_STARTED`` directly followed
                                          by ``WORKFLOW_EXECUTION_SIGNALED`` (event 2): "one
                                          total action for any Signal-With-Start", so that
                                          signal adds nothing
``start_child_workflow`` (1)              ``START_CHILD_WORKFLOW_EXECUTION_INITIATED``; the
                                          page's second Action of a child start (the start
                                          attempt) is the child's own ``start_workflow``,
                                          counted here on the parent's side when the
                                          child's history is not among the inputs
``schedule_activity`` (1)                 ``ACTIVITY_TASK_SCHEDULED``
``retry_activity`` (attempt - 1)          ``ACTIVITY_TASK_STARTED.attempt``
``record_activity_markers`` (1 per WFT)   local-activity markers (``MARKER_RECORDED``,
                                          ``marker_name == "core_local_activity"``): "all
                                          Local Activities associated with one Workflow
                                          Task count as a single Action", so one Action per
                                          distinct ``workflow_task_completed_event_id``
``retry_activity_local`` (n)              ``WORKFLOW_TASK_COMPLETED.metering_metadata.``
                                          ``nonfirst_local_activity_execution_attempts``
``start_timer`` (1)                       ``TIMER_STARTED``
``signal_workflow`` (1)                   ``WORKFLOW_EXECUTION_SIGNALED`` (from a client or
                                          a workflow: the page bills a workflow's signal
                                          on the signaled history)
``signal_external_workflow`` (1)          ``SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED``
                                          only when the signaled workflow's history is not
                                          among the inputs (else it is that history's
                                          ``signal_workflow``)
``accept_workflow_update`` (1)            ``WORKFLOW_EXECUTION_UPDATE_ACCEPTED``
``upsert_workflow_search_attributes`` (1) ``UPSERT_WORKFLOW_SEARCH_ATTRIBUTES``, except an
                                          upsert of ``TemporalChangeVersion`` alone
                                          (``workflow.patched``), which the page exempts
``update_workflow_options`` (1)           ``WORKFLOW_EXECUTION_OPTIONS_UPDATED``
``reset_workflow`` (1)                    ``WORKFLOW_TASK_FAILED`` with cause
                                          ``RESET_WORKFLOW``
``schedule_nexus_operation`` (1),         ``NEXUS_OPERATION_SCHEDULED``,
``request_nexus_operation_cancellation``  ``NEXUS_OPERATION_CANCEL_REQUESTED``
========================================  ===============================================

Not billed: workflow tasks themselves, activity/timer/child completions, Continue-As-New's own
event (its new run's start is the Action), markers other than local activities
(``core_patch``...). Not visible in a history, hence never counted here although billed:
queries, activity heartbeats, rejected updates (never written to history), Workflow Task
heartbeats of long local activities, schedules, export. So :attr:`HistoryStats.billable_actions`
is a lower bound of the bill, like the Cloud UI's own "Billable Actions" estimate
(https://docs.temporal.io/cloud/actions-usage: "only measures Billable Actions that exist
within Workflow event histories").

Cross-history rules (signals between the inputs, child starts) need each input's workflow id:
a ``WorkflowHistory`` has it; a bare event list gets it when another input names its run (its
parent's ``CHILD_WORKFLOW_EXECUTION_STARTED``, or a child's ``parent_workflow_execution``),
else it is unknown and signals to it count on the sender's side too. Pass ``WorkflowHistory``
objects when in doubt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

ACTIONS_DOC = "https://docs.temporal.io/cloud/actions"
"""Temporal Cloud's published list of billable Actions, the source of the billing rules."""

LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""``marker_name`` of the ``MARKER_RECORDED`` event a local activity leaves (sdk-core SDKs:
Python, TypeScript, .NET, Ruby)."""

CHANGE_VERSION_SEARCH_ATTRIBUTE = "TemporalChangeVersion"
"""The versioning search attribute whose upserts the Actions page exempts."""

History: TypeAlias = WorkflowHistory | Sequence[HistoryEvent]
"""One workflow run's history: a ``WorkflowHistory`` or its events."""

_E = EventType


@dataclass(frozen=True)
class HistoryStats:
    """Counts over one or more workflow histories (summed). Every count is of history events;
    the docstring of each field names the event."""

    histories: int = 0
    """Histories (workflow runs) counted."""
    workflow_types: dict[str, int] = field(default_factory=dict)
    """Runs per workflow type name (``WORKFLOW_EXECUTION_STARTED.workflow_type``)."""
    workflow_starts: int = 0
    """``WORKFLOW_EXECUTION_STARTED`` events (one per run)."""
    workflow_tasks: int = 0
    """``WORKFLOW_TASK_COMPLETED`` events: workflow tasks the worker completed (failed and
    timed-out workflow tasks are not counted)."""
    activities: int = 0
    """Regular activities: ``ACTIVITY_TASK_SCHEDULED`` events (retries not included)."""
    activity_retries: int = 0
    """Activity attempts after the first (``ACTIVITY_TASK_STARTED.attempt - 1``)."""
    local_activities: int = 0
    """Local activities: ``MARKER_RECORDED`` events named ``core_local_activity``."""
    local_activity_tasks: int = 0
    """Workflow tasks that recorded at least one local-activity marker (Cloud bills one Action
    per such workflow task, however many local activities it ran)."""
    local_activity_retries: int = 0
    """Local-activity attempts after the first (``WORKFLOW_TASK_COMPLETED.metering_metadata.
    nonfirst_local_activity_execution_attempts``)."""
    timers: int = 0
    """``TIMER_STARTED`` events (ring timeouts, talk limits, ``wait_condition`` timeouts...)."""
    signals_received: int = 0
    """``WORKFLOW_EXECUTION_SIGNALED`` events (from clients and from other workflows)."""
    signals_sent: int = 0
    """``SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED`` events (signals sent by the workflows)."""
    updates: int = 0
    """``WORKFLOW_EXECUTION_UPDATE_ACCEPTED`` events (rejected updates leave no event)."""
    child_workflows: int = 0
    """``START_CHILD_WORKFLOW_EXECUTION_INITIATED`` events."""
    search_attribute_upserts: int = 0
    """``UPSERT_WORKFLOW_SEARCH_ATTRIBUTES`` events, ``TemporalChangeVersion`` ones included."""
    billable: dict[str, int] = field(default_factory=dict)
    """Temporal Cloud Actions by metric name (the module docstring's table, from
    https://docs.temporal.io/cloud/actions); only non-zero entries."""
    billable_actions: int = 0
    """Temporal Cloud billable Actions visible in these histories: ``sum(billable.values())``."""

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able data."""
        return asdict(self)

    def format(self) -> str:
        """One line for a benchmark's report, e.g. ``1 workflow, 23 wf tasks, 4 activities,
        0 local activities, 2 timers, 2 updates, signals 7 in / 2 out, 3 child workflows, 8 SA
        upserts; 39 billable actions``."""
        types = ", ".join(f"{n} x {t}" if n > 1 else t for t, n in self.workflow_types.items())
        la = f"{self.local_activities} local activities"
        if self.local_activities:
            la += f" (in {self.local_activity_tasks} wf tasks)"
        return (
            f"{self.histories} workflow{'s' if self.histories != 1 else ''}"
            f"{f' ({types})' if types else ''}, {self.workflow_tasks} wf tasks, "
            f"{self.activities} activities, {la}, {self.timers} timers, {self.updates} updates, "
            f"signals {self.signals_received} in / {self.signals_sent} out, "
            f"{self.child_workflows} child workflows, {self.search_attribute_upserts} SA upserts; "
            f"{self.billable_actions} billable actions"
        )


def events_of(history: History) -> Sequence[HistoryEvent]:
    """The events of ``history`` (a ``WorkflowHistory`` or already a sequence of events)."""
    return history.events if isinstance(history, WorkflowHistory) else history


def child_executions(history: History) -> list[tuple[str, str]]:
    """``(workflow_id, run_id)`` of every child workflow that ``history`` started
    (``CHILD_WORKFLOW_EXECUTION_STARTED``; a child whose start failed has none), in order.
    Empty for a workflow without children."""
    out: list[tuple[str, str]] = []
    for ev in events_of(history):
        if ev.event_type == _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            we = ev.child_workflow_execution_started_event_attributes.workflow_execution
            out.append((we.workflow_id, we.run_id))
    return out


def _run_id(events: Sequence[HistoryEvent]) -> str:
    if events and events[0].event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return events[0].workflow_execution_started_event_attributes.original_execution_run_id
    return ""


def _workflow_ids(histories: Sequence[History]) -> list[str | None]:
    """Each history's workflow id: its own when a ``WorkflowHistory``, else inferred from a run
    id another input names (parent -> child, child -> parent), else None."""
    by_run: dict[str, str] = {}
    for h in histories:
        for ev in events_of(h):
            if ev.event_type == _E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                we = ev.child_workflow_execution_started_event_attributes.workflow_execution
                if we.run_id:
                    by_run[we.run_id] = we.workflow_id
            elif ev.event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                parent = ev.workflow_execution_started_event_attributes.parent_workflow_execution
                if parent.run_id:
                    by_run[parent.run_id] = parent.workflow_id
    ids: list[str | None] = []
    for h in histories:
        if isinstance(h, WorkflowHistory):
            ids.append(h.workflow_id)
        else:
            ids.append(by_run.get(_run_id(h)) or None)
    return ids


def history_stats(*histories: History) -> HistoryStats:
    """Counts and Temporal Cloud billable Actions of ``histories`` (one workflow run each:
    e.g. a building call and, if it has any, its child workflows), summed. The rules, and the
    Temporal Cloud page they come from (https://docs.temporal.io/cloud/actions), are in this
    module's docstring."""
    known_ids = {wid for wid in _workflow_ids(histories) if wid is not None}
    c: Counter[str] = Counter()
    bill: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for h in histories:
        events = events_of(h)
        c["histories"] += 1
        la_tasks: set[int] = set()
        for i, ev in enumerate(events):
            t = ev.event_type
            if t == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                c["workflow_starts"] += 1
                types[ev.workflow_execution_started_event_attributes.workflow_type.name] += 1
                nxt = events[i + 1] if i + 1 < len(events) else None
                if nxt is not None and nxt.event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    bill["signal_workflow_with_start"] += 1
                else:
                    bill["start_workflow"] += 1
            elif t == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                c["workflow_tasks"] += 1
                metering = ev.workflow_task_completed_event_attributes.metering_metadata
                retries = metering.nonfirst_local_activity_execution_attempts
                c["local_activity_retries"] += retries
                bill["retry_activity_local"] += retries
            elif t == _E.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                cause = ev.workflow_task_failed_event_attributes.cause
                if cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW:
                    bill["reset_workflow"] += 1
            elif t == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                c["activities"] += 1
                bill["schedule_activity"] += 1
            elif t == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                retries = max(0, ev.activity_task_started_event_attributes.attempt - 1)
                c["activity_retries"] += retries
                bill["retry_activity"] += retries
            elif t == _E.EVENT_TYPE_MARKER_RECORDED:
                marker = ev.marker_recorded_event_attributes
                if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                    c["local_activities"] += 1
                    la_tasks.add(marker.workflow_task_completed_event_id)
            elif t == _E.EVENT_TYPE_TIMER_STARTED:
                c["timers"] += 1
                bill["start_timer"] += 1
            elif t == _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                c["signals_received"] += 1
                if i != 1 or events[0].event_type != _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                    bill["signal_workflow"] += 1  # else part of the Signal-With-Start's Action
            elif t == _E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
                c["signals_sent"] += 1
                target = ev.signal_external_workflow_execution_initiated_event_attributes.workflow_execution
                if target.workflow_id not in known_ids:
                    bill["signal_external_workflow"] += 1
            elif t == _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                c["updates"] += 1
                bill["accept_workflow_update"] += 1
            elif t == _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                c["child_workflows"] += 1
                bill["start_child_workflow"] += 1
                if ev.start_child_workflow_execution_initiated_event_attributes.workflow_id not in known_ids:
                    bill["start_workflow"] += 1  # the child's start; its history is not here
            elif t == _E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
                c["search_attribute_upserts"] += 1
                fields = (
                    ev.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
                )
                if set(fields) - {CHANGE_VERSION_SEARCH_ATTRIBUTE}:
                    bill["upsert_workflow_search_attributes"] += 1
            elif t == _E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
                bill["update_workflow_options"] += 1
            elif t == _E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED:
                bill["schedule_nexus_operation"] += 1
            elif t == _E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
                bill["request_nexus_operation_cancellation"] += 1
        c["local_activity_tasks"] += len(la_tasks)
        bill["record_activity_markers"] += len(la_tasks)
    billable = {k: v for k, v in sorted(bill.items()) if v}
    return HistoryStats(
        histories=c["histories"],
        workflow_types=dict(types),
        workflow_starts=c["workflow_starts"],
        workflow_tasks=c["workflow_tasks"],
        activities=c["activities"],
        activity_retries=c["activity_retries"],
        local_activities=c["local_activities"],
        local_activity_tasks=c["local_activity_tasks"],
        local_activity_retries=c["local_activity_retries"],
        timers=c["timers"],
        signals_received=c["signals_received"],
        signals_sent=c["signals_sent"],
        updates=c["updates"],
        child_workflows=c["child_workflows"],
        search_attribute_upserts=c["search_attribute_upserts"],
        billable=billable,
        billable_actions=sum(billable.values()),
    )

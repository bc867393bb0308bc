"""bench/history_stats.py over the stored histories (tests/histories/*.json) and a few
synthetic events: counts, Temporal Cloud billable Actions, cross-history rules. No server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench.history_stats import (
    HistoryStats,
    child_executions,
    history_stats,
)

HERE = Path(__file__).parent / "histories"
NAMES = sorted(p.stem for p in HERE.glob("*.json"))


def _workflow_type(name: str) -> str:
    first = json.loads((HERE / f"{name}.json").read_text())["events"][0]
    return first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


PARENTS = [
    n for n in NAMES if "." not in n and _workflow_type(n) == "EscalationWorkflow"
]  # legacy EscalationWorkflow histories ("<id>.<n>" are their rooms); the rest are BuildingCallWorkflow


def load(workflow_id: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(workflow_id, (HERE / f"{workflow_id}.json").read_text())


def call_set(parent_id: str) -> list[WorkflowHistory]:
    """A stored building call: the parent's history and its children's."""
    parent = load(parent_id)
    return [parent, *(load(wf_id) for wf_id, _ in child_executions(parent))]


def test_histories_are_stored():
    assert "demo" in PARENTS and len(PARENTS) >= 4


def test_demo_escalation_workflow():
    st = history_stats(load("demo"))
    assert st.histories == 1
    assert st.workflow_types == {"EscalationWorkflow": 1}
    assert st.workflow_starts == 1
    assert st.workflow_tasks == 23
    assert st.child_workflows == 3
    assert st.activities == 4
    assert st.updates == 2
    assert st.signals_received == 7
    assert st.signals_sent == 2
    assert st.search_attribute_upserts == 8
    assert st.local_activities == 0


def test_child_executions():
    assert [wf_id for wf_id, _ in child_executions(load("demo"))] == ["demo.1", "demo.2", "demo.3"]
    assert all(run_id for _, run_id in child_executions(load("demo")))
    assert child_executions(load("demo.1")) == []


@pytest.mark.parametrize("name", NAMES)
def test_counts_are_consistent(name: str):
    st = history_stats(load(name))
    assert st.histories == st.workflow_starts == 1
    assert st.workflow_tasks > 0
    assert st.billable_actions == sum(st.billable.values())
    assert all(v > 0 for v in st.billable.values())
    assert st.billable_actions >= (
        st.workflow_starts + st.activities + st.timers + st.updates + st.child_workflows + st.signals_received
    )
    assert st.billable.get("schedule_activity", 0) == st.activities
    assert st.billable.get("start_timer", 0) == st.timers
    assert st.billable.get("accept_workflow_update", 0) == st.updates
    assert st.billable.get("start_child_workflow", 0) == st.child_workflows
    json.dumps(st.as_dict())


@pytest.mark.parametrize("parent", PARENTS)
def test_a_building_call_sums_its_workflows(parent: str):
    histories = call_set(parent)
    total = history_stats(*histories)
    parts = [history_stats(h) for h in histories]
    assert total.histories == len(histories) == 1 + total.child_workflows
    for attr in ("workflow_tasks", "activities", "timers", "updates", "signals_received", "signals_sent"):
        assert getattr(total, attr) == sum(getattr(p, attr) for p in parts), attr
    assert total.workflow_types["EscalationWorkflow"] == 1
    assert total.workflow_types["CallWorkflow"] == total.child_workflows
    # every signal between the call's workflows is billed once, on the signaled side
    assert total.signals_sent <= total.signals_received
    assert "signal_external_workflow" not in total.billable
    assert total.billable["signal_workflow"] == total.signals_received
    # each child start is two Actions (intent + start), with or without the child's history
    starts = total.billable["start_workflow"] + total.billable["start_child_workflow"]
    assert starts == 1 + 2 * total.child_workflows
    alone = history_stats(histories[0])
    assert alone.billable["start_workflow"] + alone.billable["start_child_workflow"] == starts


def test_signals_to_a_workflow_left_out_are_billed_on_the_sender():
    alone = history_stats(load("demo"))  # the parent signals demo.3 (answer, hang_up)
    assert alone.billable["signal_external_workflow"] == alone.signals_sent == 2
    assert alone.billable["signal_workflow"] == alone.signals_received
    whole = history_stats(*call_set("demo"))
    assert whole.billable_actions == sum(history_stats(h).billable_actions for h in call_set("demo")) - (
        whole.signals_sent  # each was counted by its sender and its receiver separately
        + whole.child_workflows  # each child start, by the parent (child absent) and by the child
    )


def test_bare_event_lists_get_their_ids_from_the_parent():
    histories = call_set("demo-s3")
    expected = history_stats(*histories)
    assert history_stats(*(list(h.events) for h in histories)) == expected
    assert history_stats(histories[0], *(list(h.events) for h in histories[1:])) == expected


def test_change_version_upserts_are_not_billed():
    st = history_stats(load("demo-s3.1"))  # workflow.patched upserts TemporalChangeVersion alone
    assert st.search_attribute_upserts == 6
    assert st.billable["upsert_workflow_search_attributes"] == 3


def test_format():
    line = history_stats(*call_set("demo")).format()
    assert "4 workflows (EscalationWorkflow, 3 x CallWorkflow)" in line
    assert "45 wf tasks" in line and "billable actions" in line
    assert HistoryStats().format().startswith("0 workflows")


# ---------------------------------------------------------------- synthetic events

E = EventType


def ev(event_id: int, event_type: int, **attrs: object) -> HistoryEvent:
    return HistoryEvent(event_id=event_id, event_type=event_type, **attrs)  # type: ignore[arg-type]


def started(event_id: int = 1) -> HistoryEvent:
    e = ev(event_id, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    e.workflow_execution_started_event_attributes.workflow_type.name = "BuildingCallWorkflow"
    return e


def wft_completed(event_id: int, la_retries: int = 0) -> HistoryEvent:
    e = ev(event_id, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    metering = e.workflow_task_completed_event_attributes.metering_metadata
    metering.nonfirst_local_activity_execution_attempts = la_retries
    return e


def marker(event_id: int, wft: int, name: str = "core_local_activity") -> HistoryEvent:
    e = ev(event_id, E.EVENT_TYPE_MARKER_RECORDED)
    e.marker_recorded_event_attributes.marker_name = name
    e.marker_recorded_event_attributes.workflow_task_completed_event_id = wft
    return e


def test_local_activities_of_one_workflow_task_are_one_action():
    events = [
        started(),
        ev(2, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        ev(3, E.EVENT_TYPE_WORKFLOW_TASK_STARTED),
        wft_completed(4),
        marker(5, 4),
        marker(6, 4),
        marker(7, 4, name="core_patch"),
        ev(8, E.EVENT_TYPE_TIMER_STARTED),
        ev(9, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
        ev(10, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        ev(11, E.EVENT_TYPE_WORKFLOW_TASK_STARTED),
        wft_completed(12, la_retries=2),
        marker(13, 12),
        ev(14, E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
    ]
    st = history_stats(events)
    assert st.workflow_types == {"BuildingCallWorkflow": 1}
    assert st.workflow_tasks == 2
    assert st.local_activities == 3
    assert st.local_activity_tasks == 2
    assert st.local_activity_retries == 2
    assert st.activities == 0
    assert st.billable == {
        "accept_workflow_update": 1,
        "record_activity_markers": 2,
        "retry_activity_local": 2,
        "start_timer": 1,
        "start_workflow": 1,
    }
    assert st.billable_actions == 7
    assert "3 local activities (in 2 wf tasks)" in st.format()


def test_signal_with_start_is_one_action():
    events = [
        started(),
        ev(2, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
        ev(3, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
    ]
    st = history_stats(events)
    assert st.signals_received == 1
    assert st.billable == {"signal_workflow_with_start": 1}


def test_activity_retries_are_billed():
    retried = ev(6, E.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    retried.activity_task_started_event_attributes.attempt = 3
    st = history_stats([started(), ev(5, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), retried])
    assert st.activities == 1 and st.activity_retries == 2
    assert st.billable == {"retry_activity": 2, "schedule_activity": 1, "start_workflow": 1}


def test_nothing():
    assert history_stats() == HistoryStats()
    assert history_stats([]).histories == 1

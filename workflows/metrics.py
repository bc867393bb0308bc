"""``CallMetrics``: the call metrics of one building call, recorded from the workflow through
``workflow.metric_meter()`` (docs/metrics.md is the contract of names, types and labels).

The SDK's workflow meter is replay-safe: nothing is recorded while a workflow replays its
history (after an eviction or on another worker), so each fact is counted once per call. The
worker's runtime exposes them with the SDK's own ``temporal_*`` metrics on its Prometheus
endpoint (``RINGFLOW_WORKER_METRICS_ADDRESS``, ``ringflow.worker.worker_runtime``), labelled by
the SDK with ``namespace``, ``task_queue`` and ``workflow_type`` (and the runtime's
``service_name``).

Instruments are made when a value is recorded, not kept: a worker caches every ringing call
(issue 8: <= 100 KiB each), and what this helper keeps per call is two plain fields. Labels
that do not exist yet (``tenant``, ``site``: issue 9) go in :meth:`CallMetrics._meter`, with
``with_additional_attributes``, in one place.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import MetricMeter

# Names as the instruments are made: the worker's runtime (Prometheus conventions) appends
# ``_total`` to counters and ``_seconds`` to durations, so they are scraped as
# ``ringflow_calls_started_total``, ``ringflow_call_setup_seconds``, ... (docs/metrics.md).
CALLS_STARTED = "ringflow_calls_started"
"""Counter: building calls started (the workflow's first task)."""
CALLS_ANSWERED = "ringflow_calls_answered"
"""Counter: building calls answered (a listener's answer took effect; at most once per call)."""
CALLS_MISSED = "ringflow_calls_missed"
"""Counter: calls nobody answered: ended with :data:`MISSED_REASONS`."""
CALLS_ABORTED = "ringflow_calls_aborted"
"""Counter: calls that failed: ended with :data:`ABORTED_REASONS`."""
CALLS_ENDED = "ringflow_calls_ended"
"""Counter, label ``end_reason``: every ended call, once (docs/events.md end reasons)."""
CALL_SETUP = "ringflow_call_setup"
"""Histogram of durations: workflow start to the first listener rung (its ``incoming_call``
push committed to the outbox)."""
RING_TO_ANSWER = "ringflow_ring_to_answer"
"""Histogram of durations: the answering room's ring (committed) to the answer taking effect."""

MISSED_REASONS = frozenset({"timeout", "busy", "rejectVoip"})
"""End reasons of a call nobody answered: every target timed out, was busy or declined
(README: "``timeout``, ``busy``, ``rejectVoip`` nobody answered")."""
ABORTED_REASONS = frozenset({"abortVoip", "joinFailCaller", "joinFailListener", "initiateFailed"})
"""End reasons of a call that failed: media lost or never joined, or nobody could be rung."""

HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    CALL_SETUP: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    RING_TO_ANSWER: [1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120],
}
"""Bucket bounds (seconds) of the call histograms, for the runtime's ``PrometheusConfig``
(keyed by the name as made):
setup is milliseconds to seconds (the ring must not wait), ring-to-answer is seconds up to
the reference's 60 s ring timeout and beyond."""


class CallMetrics:
    """The metrics of one building call; the workflow holds one and calls it at each fact.

    ``started()`` once at the start; ``rang(ring_started)`` when a room's ring is committed
    (the first one of the call is its setup time); ``answered(ring_started)`` when an answer
    takes effect; ``ended(end_reason)`` once with the call's end reason. Times are workflow
    times (``workflow.now()``); durations are exposed in seconds.
    """

    __slots__ = ("_answered", "_rang")

    def __init__(self) -> None:
        self._rang = False  # the call's setup time is recorded
        self._answered = False  # the call's answer is counted

    @staticmethod
    def _meter() -> MetricMeter:
        """The workflow's replay-safe meter (issue 9 adds ``tenant``/``site`` here)."""
        return workflow.metric_meter()

    def started(self) -> None:
        """The building call started."""
        self._meter().create_counter(CALLS_STARTED, "Building calls started").add(1)

    def rang(self) -> None:
        """A room's ring is committed (``incoming_call`` in the outbox): the first one of the
        call records its setup time, from the workflow's start."""
        if self._rang:
            return
        self._rang = True
        setup = workflow.now() - workflow.info().start_time
        self._meter().create_histogram_timedelta(
            CALL_SETUP, "Workflow start to the first listener rung"
        ).record(max(setup, timedelta(0)))

    def answered(self, ring_started: datetime) -> None:
        """A listener's answer took effect; ``ring_started``: when its room's ring was
        committed. Counted once per call."""
        if self._answered:
            return
        self._answered = True
        meter = self._meter()
        meter.create_counter(CALLS_ANSWERED, "Building calls answered").add(1)
        ringing = workflow.now() - ring_started
        meter.create_histogram_timedelta(
            RING_TO_ANSWER, "Ring of the answering listener to the answer"
        ).record(max(ringing, timedelta(0)))

    def ended(self, end_reason: str) -> None:
        """The call ended with ``end_reason`` (docs/events.md): ``ended`` by reason, and
        ``missed`` or ``aborted`` when the reason says so."""
        meter = self._meter()
        meter.create_counter(CALLS_ENDED, "Building calls ended, by end reason").add(
            1, {"end_reason": end_reason}
        )
        if end_reason in MISSED_REASONS:
            meter.create_counter(CALLS_MISSED, "Building calls nobody answered").add(1)
        elif end_reason in ABORTED_REASONS:
            meter.create_counter(CALLS_ABORTED, "Building calls that failed").add(1)

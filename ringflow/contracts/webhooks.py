"""Domain events (the payloads of signed webhooks and of the event feed) and the webhook
administration contracts (issue 9 items 3 and 4). ``docs/webhooks.md`` is the user's page,
with examples.

A domain event is what a backend needs to know of a call, derived from the call events
(``docs/events.md``) in the transaction that records them (``store/feed.py``):

==================  ======================================  ================================
type                made from                               ``data``
==================  ======================================  ================================
``call.created``    ``callStarted``                         :class:`CallCreatedData`
``call.ringing``    ``ringing`` (one per rung target)       :class:`CallRingingData`
``call.answered``   ``answered``                            :class:`CallAnsweredData`
``call.action``     ``customActionResult``                  :class:`CallActionData`
``call.missed``     ``callEnded`` nobody answered           :class:`CallMissedData`
``call.ended``      ``callEnded`` (always, after missed)    :class:`CallEndedData`
``device.offline``  not produced yet (docs/webhooks.md)     :class:`DeviceOfflineData`
==================  ======================================  ================================

Times are UTC (ISO 8601), durations whole seconds (``keepTime`` is the reference's).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AnyHttpUrl, Field, StringConstraints, field_validator

from ringflow.contracts.common import Contract


class EventType(StrEnum):
    """Domain event types; a webhook endpoint's filter lists some of them (none: all)."""

    CALL_CREATED = "call.created"
    CALL_RINGING = "call.ringing"
    CALL_ANSWERED = "call.answered"
    CALL_MISSED = "call.missed"
    CALL_ENDED = "call.ended"
    CALL_ACTION = "call.action"
    DEVICE_OFFLINE = "device.offline"


class CallRef(Contract):
    """The call an event is about, as every ``call.*`` event's ``data`` starts:
    ``caller`` is a party key (``"device:LOBBY-1"``)."""

    call_id: str
    unit_id: str | None = None
    caller: str | None = None
    caller_name: str | None = None
    room_type: str | None = None


class CallCreatedData(CallRef):
    """``call.created``: the call was accepted (``callStarted``); ``started_at`` UTC."""

    started_at: datetime | None = None


class CallRingingData(CallRef):
    """``call.ringing``: ``listener`` (party key) is being rung in room ``room_id``."""

    room_id: str | None = None
    listener: str | None = None
    listener_name: str | None = None


class CallAnsweredData(CallRef):
    """``call.answered``: ``answered_by`` (party key) answered in ``room_id``."""

    room_id: str | None = None
    answered_by: str | None = None
    answered_by_name: str | None = None


class CallActionData(CallRef):
    """``call.action``: an in-call action (``open_door``) settled: ``result`` ``done``
    (the device did it), ``failed`` (it said it could not) or ``timeout`` (no
    acknowledgement within ``RINGFLOW_ACTION_ACK_TIMEOUT_S``); ``detail`` is the device's."""

    action_id: str | None = None
    action: str | None = None
    result: str | None = None
    detail: str | None = None
    by: str | None = None


class AttemptData(Contract):
    """One rung target of a call (``attempts`` row): ``outcome`` answered / no_answer /
    busy / rejected / passed / cancelled / failed / skipped, ``end_reason`` its terminal event,
    ``keepTime`` seconds of talk."""

    room_id: str
    listener: str
    listener_name: str | None = None
    outcome: str | None = None
    end_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    keep_time_s: int | None = Field(None, alias="keepTime")


class CallEndedData(CallRef):
    """``call.ended`` (every call, once) and ``call.missed`` (a call nobody answered that the
    caller did not give up on: ``end_reason`` not ``cancelVoip``): ``end_reason``
    (docs/events.md), ``err_code``, ``keepTime`` (talk seconds, 0 unanswered),
    ``answered_by`` (party key or None), the ``attempts`` in ring order."""

    end_reason: str | None = None
    err_code: int | None = None
    keep_time_s: int = Field(0, alias="keepTime")
    answered_by: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: list[AttemptData] = Field(default_factory=list)


class CallMissedData(CallEndedData):
    """``call.missed`` (issue 10 item 4): :class:`CallEndedData` and the follow-up:
    ``snapshot_url`` (the backend's ``GET /v1/calls/{call_id}/snapshot.jpg``, when the visitor's
    snapshot is stored with the call) and ``follow_up_until`` (UTC; until then a rung resident
    may call the door back or open it, per the unit's policy; None: no window)."""

    snapshot_url: str | None = None
    follow_up_until: datetime | None = None


class DeviceOfflineData(Contract):
    """``device.offline`` (reserved): device ``sn`` has had no push socket since ``since``."""

    sn: str
    since: datetime | None = None


class Event(Contract):
    """A domain event as webhooks deliver it (the JSON body) and the feed lists it.

    ``id`` is stable (``"<call event id>/<type>"``): the webhook's ``webhook-id`` and the
    key to de-duplicate by; ``seq`` increases per tenant in commit order (the feed's order);
    ``timestamp`` is when it happened (UTC); ``data`` one of the ``*Data`` models by type."""

    id: str
    type: EventType
    timestamp: datetime
    tenant_id: str
    seq: int
    call_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class EventPage(Contract):
    """``GET /v1/events``: ``items`` by ``seq``; ``next_cursor`` is where to continue (always
    set: the cursor after the last item, or the given one when nothing newer exists)."""

    items: list[Event]
    next_cursor: str


WebhookDescription = Annotated[str, StringConstraints(max_length=500)]


def _check_url(url: AnyHttpUrl | None) -> AnyHttpUrl | None:
    if url is None:  # PATCH: unchanged
        return url
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("url must be http:// or https:// with a host")
    if len(str(url)) > 2000:
        raise ValueError("url longer than 2000 characters")
    return url


class WebhookCreate(Contract):
    """``POST /v1/webhooks``: where to deliver (``http``/``https`` URL), which event types
    (empty: all), a description, enabled or not."""

    url: AnyHttpUrl
    event_types: list[EventType] = Field(default_factory=list, max_length=len(EventType))
    description: WebhookDescription = ""
    enabled: bool = True

    _url = field_validator("url")(_check_url)


class WebhookUpdate(Contract):
    """``PATCH /v1/webhooks/{id}``: the fields given change; ``enabled: true`` on an endpoint
    disabled for failing clears its failure count and reason, and its pending deliveries go
    out again; ``rotate_secret: true`` makes a new secret (the previous one still signs,
    beside it, for ``RINGFLOW_WEBHOOK_SECRET_OVERLAP_S``)."""

    url: AnyHttpUrl | None = None
    event_types: list[EventType] | None = Field(None, max_length=len(EventType))
    description: WebhookDescription | None = None
    enabled: bool | None = None
    rotate_secret: bool = False

    _url = field_validator("url")(_check_url)


class WebhookView(Contract):
    """A webhook endpoint. ``secret`` (``whsec_...``, Standard Webhooks) is shown only when it
    is made: on create and on rotation. ``disabled_reason`` says why ringflow disabled it
    (persistent failure); ``consecutive_failures`` / ``failing_since`` its current streak."""

    id: str
    url: str
    event_types: list[EventType]
    description: str
    enabled: bool
    secret: str | None = None
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime


class WebhookList(Contract):
    """``GET /v1/webhooks``: the tenant's endpoints, oldest first."""

    items: list[WebhookView]


class DeliveryState(StrEnum):
    """``pending`` (not delivered yet: due at ``next_attempt_at``), ``delivered`` (a 2xx
    answer), ``failed`` (retried for ``RINGFLOW_WEBHOOK_RETRY_WINDOW_S`` without success)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryAttempt(Contract):
    """One HTTP attempt: ``status_code`` (None: no answer), ``error`` (timeout, refused,
    non-2xx), ``latency_ms``."""

    n: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    latency_ms: int


class DeliveryView(Contract):
    """One event's delivery to one endpoint and its attempts (newest last)."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: EventType
    call_id: str | None = None
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    delivered_at: datetime | None = None
    created_at: datetime
    history: list[DeliveryAttempt] = Field(default_factory=list)


class DeliveryList(Contract):
    """``GET /v1/webhooks/{id}/deliveries``: newest first; ``next_cursor`` for the next page."""

    items: list[DeliveryView]
    next_cursor: str | None = None

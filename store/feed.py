"""Domain events in PostgreSQL: :func:`write` derives them from a ``record`` (called by
``store.calls.record``, in ITS transaction) and fans each one out to the webhook outbox;
:func:`page` reads the event feed (``GET /v1/events``).

Rules (docs/webhooks.md):
- ids are stable: ``"<call event id>/<type>"``; a retried ``record`` (local activities are
  at-least-once) writes nothing new, and takes no lock.
- ``seq`` is per tenant, allocated under the row lock of ``event_sequences`` (held until
  commit), so a tenant's events become visible in ``seq`` order: a reader that saw ``seq``
  N never later finds a new row below N. The cost: one tenant's event-writing transactions
  serialise from this point to their commit (milliseconds); the lock is the last one such a
  transaction takes, so it adds no deadlock.
- every new event gets one ``webhook_deliveries`` row per enabled endpoint of its tenant
  whose filter matches, in the same transaction, and :data:`CHANNEL` is NOTIFY'd at commit.

JSON is passed as text and cast in SQL (any asyncpg connection, whatever its codecs).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ringflow.contracts.activities import RecordInput
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.tenancy import tenant_of, unqualified
from ringflow.contracts.webhooks import (
    AttemptData,
    CallActionData,
    CallAnsweredData,
    CallCreatedData,
    CallEndedData,
    CallMissedData,
    CallRingingData,
    Event,
    EventType,
)

CHANNEL = "ringflow_webhooks"
"""LISTEN/NOTIFY channel of the webhook dispatcher; payload: the tenant id."""

SOURCE_EVENTS = frozenset(
    {
        EventName.CALL_STARTED,
        EventName.RINGING,
        EventName.ANSWERED,
        EventName.CUSTOM_ACTION_RESULT,
        EventName.CALL_ENDED,
    }
)
"""The call events that make domain events (``ringflow/contracts/webhooks.py``)."""


class NewEvent:
    """A domain event before it is stored (no ``seq`` yet)."""

    __slots__ = ("call_id", "data", "id", "occurred_at", "order_key", "type")

    def __init__(
        self,
        id: str,
        type: EventType,
        call_id: str | None,
        order_key: str,
        at: datetime,
        data: dict[str, Any],
    ) -> None:
        self.id, self.type, self.call_id, self.order_key = id, type, call_id, order_key
        self.occurred_at, self.data = at, data


def event_id(call_event_id: str, type: EventType) -> str:
    """The stable id of the domain event ``type`` made from call event ``call_event_id``."""
    return f"{call_event_id}/{type.value}"


def _ref(call: dict[str, Any], call_id: str) -> dict[str, Any]:
    caller = f"{call['caller_kind']}:{call['caller_id']}" if call.get("caller_id") else None
    return {
        "call_id": unqualified(call_id),  # the id the tenant knows (issue 9, tenancy.qualify)
        "unit_id": call.get("unit_id"),
        "caller": caller,
        "caller_name": call.get("caller_name"),
        "room_type": call.get("room_type"),
    }


def _room(room_id: str | None) -> str | None:
    return unqualified(room_id) if room_id is not None else None


def _dump(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(mode="json", by_alias=True))


def derive(
    ev: CallEvent, call: dict[str, Any], attempts: list[dict[str, Any]], listener_names: dict[str, str]
) -> list[NewEvent]:
    """The domain events of call event ``ev`` (none for most names): ``call`` is the call's
    row (as a dict, after this transaction's upsert), ``attempts`` its attempt rows by
    ``seq``, ``listener_names`` room id -> the rung target's name."""
    ref = _ref(call, ev.call_id)
    key = f"call:{ev.call_id}"

    def one(type: EventType, data: dict[str, Any]) -> NewEvent:
        # the call id the tenant knows (events are per tenant; the call event's id stays unique)
        return NewEvent(event_id(ev.id, type), type, unqualified(ev.call_id), key, ev.at, data)

    party = ev.party.key() if ev.party else None
    if ev.name is EventName.CALL_STARTED:
        return [one(EventType.CALL_CREATED, _dump(CallCreatedData(**ref, started_at=ev.at)))]
    if ev.name is EventName.RINGING:
        listener = ev.listener.key() if ev.listener else None
        ringing = CallRingingData(
            **ref,
            room_id=_room(ev.room_id),
            listener=listener,
            listener_name=listener_names.get(ev.room_id or ""),
        )
        return [one(EventType.CALL_RINGING, _dump(ringing))]
    if ev.name is EventName.ANSWERED:
        answered = CallAnsweredData(
            **ref,
            room_id=_room(ev.room_id),
            answered_by=party,
            answered_by_name=listener_names.get(ev.room_id or ""),
        )
        return [one(EventType.CALL_ANSWERED, _dump(answered))]
    if ev.name is EventName.CUSTOM_ACTION_RESULT:
        d = ev.data
        action = CallActionData(
            **ref,
            action_id=d.get("action_id"),
            action=d.get("action"),
            result=d.get("result"),
            detail=d.get("detail"),
            by=party,
        )
        return [one(EventType.CALL_ACTION, _dump(action))]
    if ev.name is EventName.CALL_ENDED:
        end_reason = ev.data.get("end_reason") or call.get("end_reason")
        ended = CallEndedData(
            **ref,
            end_reason=end_reason,
            err_code=int(ev.err_code) if ev.err_code is not None else call.get("err_code"),
            keep_time_s=ev.keep_time_s or 0,
            answered_by=party,
            started_at=call.get("started_at"),
            ended_at=call.get("ended_at") or ev.at,
            attempts=[
                AttemptData(
                    room_id=unqualified(a["room_id"]),
                    listener=a["listener"],
                    listener_name=a.get("listener_name"),
                    outcome=a.get("outcome"),
                    end_reason=a.get("end_reason"),
                    started_at=a.get("started_at"),
                    ended_at=a.get("ended_at"),
                    keep_time_s=a.get("keep_time_s"),
                )
                for a in attempts
            ],
        )
        data = _dump(ended)
        out = []
        if party is None and end_reason != EventName.CANCEL_VOIP.value:
            missed = CallMissedData(
                **data,
                snapshot_url=f"/v1/calls/{ref['call_id']}/snapshot.jpg" if ev.data.get("snapshot") else None,
                follow_up_until=ev.data.get("follow_up_until"),
            )
            out.append(one(EventType.CALL_MISSED, _dump(missed)))
        out.append(one(EventType.CALL_ENDED, data))
        return out
    return []


async def write(conn: asyncpg.Connection, inp: RecordInput, tenant_id: str | None = None) -> int:
    """Store the domain events of ``inp.events`` for ``tenant_id`` and queue their webhook
    deliveries; returns how many events were new. Call inside ``record``'s transaction,
    after its call, attempt and event writes (it reads them back).

    ``tenant_id`` None: the tenant of the call id (tenant-qualified, ``tenancy.qualify``; the
    call row's ``tenant_id``). Events carry the call id the tenant knows (``unqualified``). Events
    already stored (a retried ``record``) are skipped without taking the sequence lock."""
    sources = [e for e in inp.events if e.name in SOURCE_EVENTS]
    if not sources:
        return 0
    wanted = [event_id(e.id, t) for e in sources for t in EventType]
    stored = {r["id"] for r in await conn.fetch("SELECT id FROM events WHERE id = ANY($1::text[])", wanted)}
    call_ids = sorted({e.call_id for e in sources})
    calls: dict[str, dict[str, Any]] = {}
    for row in await conn.fetch(
        "SELECT call_id, to_jsonb(c)::text AS row FROM calls c WHERE call_id = ANY($1::text[])", call_ids
    ):
        calls[row["call_id"]] = json.loads(row["row"])
    need_attempts = any(e.name is not EventName.CALL_STARTED for e in sources)
    attempts: dict[str, list[dict[str, Any]]] = {c: [] for c in call_ids}
    names: dict[str, str] = {}
    if need_attempts:
        for a in await conn.fetch(
            "SELECT to_jsonb(a)::text AS row FROM attempts a WHERE call_id = ANY($1::text[])"
            " ORDER BY call_id, seq, room_id",
            call_ids,
        ):
            row = json.loads(a["row"])
            attempts[row["call_id"]].append(row)
            if row.get("listener_name"):
                names[row["room_id"]] = row["listener_name"]
    for att in inp.attempts:  # this record's own snapshot is the freshest
        if att.listener_name:
            names[att.room_id] = att.listener_name
    new: list[NewEvent] = []
    for e in sources:
        for d in derive(e, calls.get(e.call_id, {}), attempts.get(e.call_id, []), names):
            if d.id not in stored:
                new.append(d)
    if not new:
        return 0
    if tenant_id is None:
        # the tenant of the (tenant-qualified) call id, as its row's tenant_id column says
        tenant_id = tenant_of(sources[0].call_id)
    return await insert(conn, tenant_id, new)


async def insert(conn: asyncpg.Connection, tenant_id: str, events: Sequence[NewEvent]) -> int:
    """Store ``events`` for ``tenant_id`` (in order; an id already stored is skipped), with the
    next ``seq`` values of the tenant (row lock until commit), queue one delivery per
    matching enabled endpoint and NOTIFY :data:`CHANNEL`. Returns the number stored.
    Call inside a transaction."""
    if not events:
        return 0
    last = await conn.fetchval(
        """
        INSERT INTO event_sequences (tenant_id, last_seq) VALUES ($1, $2)
        ON CONFLICT (tenant_id) DO UPDATE SET last_seq = event_sequences.last_seq + EXCLUDED.last_seq
        RETURNING last_seq
        """,
        tenant_id,
        len(events),
    )
    first = int(last) - len(events) + 1
    rows = await conn.fetch(
        """
        WITH new AS (
            INSERT INTO events (id, tenant_id, seq, type, call_id, order_key, occurred_at, data)
            SELECT id, $1, seq, type, call_id, order_key, at, data::jsonb
            FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                        $7::timestamptz[], $8::text[])
                 AS m(id, seq, type, call_id, order_key, at, data)
            ORDER BY seq
            ON CONFLICT (id) DO NOTHING
            RETURNING id, seq, type, order_key
        ), queued AS (
            INSERT INTO webhook_deliveries (id, endpoint_id, event_id, tenant_id, order_key, seq)
            SELECT 'dlv_' || md5(e.id || '|' || new.id), e.id, new.id, $1, new.order_key, new.seq
            FROM new JOIN webhook_endpoints e
              ON e.tenant_id = $1 AND e.enabled
             AND (cardinality(e.event_types) = 0 OR new.type = ANY(e.event_types))
            ON CONFLICT (endpoint_id, event_id) DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM new) AS stored, (SELECT count(*) FROM queued) AS queued
        """,
        tenant_id,
        [e.id for e in events],
        list(range(first, first + len(events))),
        [e.type.value for e in events],
        [e.call_id for e in events],
        [e.order_key for e in events],
        [e.occurred_at for e in events],
        [json.dumps(e.data, default=str) for e in events],
    )
    stored, queued = int(rows[0]["stored"]), int(rows[0]["queued"])
    if queued:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, tenant_id)
    return stored


# ---------------------------------------------------------------- the feed


def encode_cursor(seq: int) -> str:
    """Opaque cursor after the event ``seq`` of the feed."""
    return base64.urlsafe_b64encode(f"e1:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The ``seq`` of :func:`encode_cursor`'s ``cursor`` (None or empty: 0, the beginning);
    raises ``ValueError`` on a cursor it did not make."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, seq = raw.partition(":")
        if tag != "e1" or not seq.isdigit():
            raise ValueError
        return int(seq)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ValueError("invalid cursor") from e


def _event(row: asyncpg.Record) -> Event:
    return Event(
        id=row["id"],
        type=row["type"],
        timestamp=row["occurred_at"],
        tenant_id=row["tenant_id"],
        seq=row["seq"],
        call_id=row["call_id"],
        data=json.loads(row["data"]),
    )


EVENT_COLUMNS = "id, tenant_id, seq, type, call_id, occurred_at, data::text AS data"


async def page(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, after_seq: int, limit: int
) -> list[Event]:
    """``tenant_id``'s events with ``seq > after_seq``, by ``seq``, at most ``limit``."""
    rows = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        tenant_id,
        after_seq,
        limit,
    )
    return [_event(r) for r in rows]


async def get(conn: asyncpg.Connection | asyncpg.Pool, event_id: str) -> Event | None:
    """One event by id, or None."""
    row = await conn.fetchrow(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = $1", event_id)
    return None if row is None else _event(row)

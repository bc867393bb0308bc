"""The push outbox: messages to devices and residents, written in the transaction of the
state change that caused them and delivered by the WebSocket hub (``api/hub.py``).

Delivery rule (``ringflow/contracts/push.py``): per recipient in ``seq`` order; a
message stays pending until the recipient acknowledges its ``id``, and every
pending message is sent again after a reconnect (clients de-duplicate by ``id``).
Writers ``NOTIFY`` :data:`CHANNEL` with the recipient key; PostgreSQL delivers a
notification sent inside a transaction only when it commits, so the hub never
wakes for a message it cannot read yet.

JSON columns are passed as text and cast in SQL, so these functions work on any
asyncpg connection whatever JSON codecs it has.

Traces (``ringflow/tracing.py``): :func:`insert` stores the W3C ``traceparent`` of the span
that writes the rows (the activity's, when tracing is on), and the hub makes each delivery
a child span of it; :func:`backlog` is what the API's push backlog gauges show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from ringflow.contracts.push import PushMessage, PushType
from ringflow.contracts.tenancy import party_key, tenant_of, unqualified
from ringflow.tracing import current_traceparent

CHANNEL = "ringflow_push"
"""LISTEN/NOTIFY channel; the payload is the recipient's party key (``"user:alice"``)."""

MAX_BATCH = 200
"""Most messages :func:`pending` returns at once."""


class OutboxMessage(BaseModel):
    """A stored push message: the contract's fields plus its per-outbox ``seq``."""

    id: str
    seq: int
    recipient: str
    type: PushType
    call_id: str
    room_id: str | None = None
    at: datetime
    payload: dict[str, Any]
    traceparent: str | None = None  # the writer's trace context (not sent to the client)

    def frame(self) -> dict[str, Any]:
        """The WebSocket frame: ``{"id","type","call_id","room_id","at","payload"}`` (``at`` ISO 8601).
        ``call_id`` and ``room_id`` are the ones the party's tenant knows (unqualified, issue 9);
        ``id`` stays as stored: the client acknowledges with it."""
        return {
            "id": self.id,
            "type": self.type.value,
            "call_id": unqualified(self.call_id),
            "room_id": unqualified(self.room_id) if self.room_id is not None else None,
            "at": self.at.isoformat(),
            "payload": _unqualified_ids(self.payload),
        }


def _unqualified_ids(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its ``room_id`` (``call_ended``, ``custom_action``) as the tenant knows it."""
    room_id = payload.get("room_id")
    return {**payload, "room_id": unqualified(room_id)} if isinstance(room_id, str) else payload


async def insert(conn: asyncpg.Connection, pushes: Sequence[PushMessage]) -> set[str]:
    """Insert ``pushes`` (a message whose ``id`` is already stored is skipped) and
    ``NOTIFY`` each recipient of a new message. Returns the notified recipient keys.

    Call inside the caller's transaction: rows and notifications then appear at commit.
    Each row keeps the current span's ``traceparent`` (None when not tracing). The recipient is
    stored (and notified) as the party's key qualified by the tenant of the message's call id
    (``tenancy.party_key``), so only that tenant's party's push socket ever reads it.
    """
    if not pushes:
        return set()
    # one statement for the batch, rows in the given order (seq follows it), then one NOTIFY
    # per recipient of a new row
    rows = await conn.fetch(
        """
        WITH new AS (
            INSERT INTO outbox (id, recipient, type, call_id, room_id, at, payload, traceparent, tenant_id)
            SELECT id, recipient, type, call_id, room_id, at, payload::jsonb, $9::text, tenant_id
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                        $6::timestamptz[], $7::text[], $10::text[])
                 WITH ORDINALITY AS m(id, recipient, type, call_id, room_id, at, payload, tenant_id, n)
            ORDER BY n
            ON CONFLICT (id) DO NOTHING
            RETURNING recipient
        )
        SELECT d.recipient FROM (SELECT DISTINCT recipient FROM new) AS d,
             LATERAL (SELECT pg_notify($8, d.recipient)) AS notified
        """,
        [p.id for p in pushes],
        [party_key(tenant_of(p.call_id), p.recipient) for p in pushes],
        [p.type.value for p in pushes],
        [p.call_id for p in pushes],
        [p.room_id for p in pushes],
        [p.at for p in pushes],
        [json.dumps(p.payload, default=str) for p in pushes],
        CHANNEL,
        current_traceparent(),
        [tenant_of(p.call_id) for p in pushes],
    )
    return {r["recipient"] for r in rows}


async def pending(
    conn: asyncpg.Connection | asyncpg.Pool,
    recipient: str,
    after_seq: int = 0,
    exclude: Iterable[str] = (),
    limit: int = MAX_BATCH,
) -> list[OutboxMessage]:
    """Unacknowledged messages of ``recipient`` (party key) with ``seq > after_seq`` and an
    id not in ``exclude`` (already sent on this connection), by ``seq``, at most ``limit``."""
    rows = await conn.fetch(
        """
        SELECT id, seq, recipient, type, call_id, room_id, at, payload::text AS payload, traceparent
        FROM outbox
        WHERE recipient = $1 AND seq > $2 AND acked_at IS NULL AND id <> ALL($3::text[])
        ORDER BY seq
        LIMIT $4
        """,
        recipient,
        after_seq,
        list(exclude),
        limit,
    )
    return [OutboxMessage(**{**dict(r), "payload": json.loads(r["payload"])}) for r in rows]


async def ack(conn: asyncpg.Connection | asyncpg.Pool, recipient: str, ids: Iterable[str]) -> int:
    """Mark ``ids`` delivered, only those addressed to ``recipient`` (others are ignored).
    Returns how many messages were newly acknowledged."""
    ids = list(ids)
    if not ids:
        return 0
    result = await conn.execute(
        """
        UPDATE outbox SET acked_at = now()
        WHERE recipient = $1 AND id = ANY($2::text[]) AND acked_at IS NULL
        """,
        recipient,
        ids,
    )
    return int(result.split()[-1])


async def backlog(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, float]:
    """(messages not acknowledged yet, age of the oldest of them in seconds; 0.0 when none),
    from the partial index ``outbox_unacked_at_idx`` (migration 0005). Age counts from the
    message's ``at`` (the time of the event that caused it)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(at)), 0)::float8 AS age_s
        FROM outbox WHERE acked_at IS NULL
        """
    )
    assert row is not None
    return int(row["n"]), max(float(row["age_s"]), 0.0)

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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from ringflow.contracts.push import PushMessage, PushType

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

    def frame(self) -> dict[str, Any]:
        """The WebSocket frame: ``{"id","type","call_id","room_id","at","payload"}`` (``at`` ISO 8601)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "call_id": self.call_id,
            "room_id": self.room_id,
            "at": self.at.isoformat(),
            "payload": self.payload,
        }


async def insert(conn: asyncpg.Connection, pushes: Sequence[PushMessage]) -> set[str]:
    """Insert ``pushes`` (a message whose ``id`` is already stored is skipped) and
    ``NOTIFY`` each recipient of a new message. Returns the notified recipient keys.

    Call inside the caller's transaction: rows and notifications then appear at commit.
    """
    notified: set[str] = set()
    for p in pushes:
        inserted = await conn.fetchval(
            """
            INSERT INTO outbox (id, recipient, type, call_id, room_id, at, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)
            ON CONFLICT (id) DO NOTHING
            RETURNING recipient
            """,
            p.id,
            p.recipient.key(),
            p.type.value,
            p.call_id,
            p.room_id,
            p.at,
            json.dumps(p.payload, default=str),
        )
        if inserted is not None:
            notified.add(inserted)
    for key in sorted(notified):
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, key)
    return notified


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
        SELECT id, seq, recipient, type, call_id, room_id, at, payload::text AS payload
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

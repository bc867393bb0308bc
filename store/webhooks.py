"""Webhook endpoints, their delivery outbox and attempts in PostgreSQL (docs/webhooks.md).

Endpoints are per tenant; every query here takes the tenant and filters by it, so another
tenant's endpoint or delivery is simply not found. Deliveries are queued by
``store.feed.insert`` with their event; the dispatcher (``ringflow/webhook_dispatcher.py``)
leases due ones with :func:`claim` (``FOR UPDATE SKIP LOCKED``: several workers share the
work) and settles each with :func:`settle`.

Times are timestamptz (UTC); ``now`` arguments come from the dispatcher's clock, so that
tests can run it on a fake one.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ringflow.contracts.webhooks import (
    DeliveryAttempt,
    DeliveryState,
    DeliveryView,
    EventType,
    WebhookCreate,
    WebhookUpdate,
    WebhookView,
)
from store.feed import CHANNEL


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _view(row: asyncpg.Record, *, with_secret: bool = False) -> WebhookView:
    return WebhookView(
        id=row["id"],
        url=row["url"],
        event_types=[EventType(t) for t in row["event_types"]],
        description=row["description"],
        enabled=row["enabled"],
        secret=row["secret"] if with_secret else None,
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
        consecutive_failures=row["consecutive_failures"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, body: WebhookCreate) -> WebhookView:
    """A new endpoint of ``tenant_id`` with a new secret (shown in the result, only here
    and on rotation)."""
    row = await conn.fetchrow(
        """
        INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, enabled, secret)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
        """,
        "wh_" + uuid.uuid4().hex,
        tenant_id,
        str(body.url),
        body.description,
        [t.value for t in body.event_types],
        body.enabled,
        new_secret(),
    )
    assert row is not None
    return _view(row, with_secret=True)


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, endpoint_id: str
) -> WebhookView | None:
    """The endpoint, or None when unknown or another tenant's."""
    row = await conn.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id
    )
    return None if row is None else _view(row)


async def list_endpoints(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> list[WebhookView]:
    """The tenant's endpoints, oldest first."""
    rows = await conn.fetch(
        "SELECT * FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
    )
    return [_view(r) for r in rows]


async def update(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: str,
    endpoint_id: str,
    body: WebhookUpdate,
    secret_overlap: timedelta,
) -> WebhookView | None:
    """Apply ``body`` (given fields only); None when unknown. Enabling clears the failure
    streak and reason; ``rotate_secret`` keeps the old secret signing beside the new one for
    ``secret_overlap`` and returns the new secret."""
    row = await conn.fetchrow(
        """
        UPDATE webhook_endpoints SET
            url = COALESCE($3, url),
            event_types = COALESCE($4, event_types),
            description = COALESCE($5, description),
            enabled = COALESCE($6, enabled),
            consecutive_failures = CASE WHEN $6 THEN 0 ELSE consecutive_failures END,
            failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
            disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
            disabled_at = CASE WHEN $6 THEN NULL WHEN $6 = false THEN now() ELSE disabled_at END,
            previous_secret = CASE WHEN $7 THEN secret ELSE previous_secret END,
            previous_expires_at = CASE WHEN $7 THEN now() + $8::interval ELSE previous_expires_at END,
            secret = CASE WHEN $7 THEN $9 ELSE secret END,
            updated_at = now()
        WHERE id = $1 AND tenant_id = $2
        RETURNING *
        """,
        endpoint_id,
        tenant_id,
        str(body.url) if body.url is not None else None,
        [t.value for t in body.event_types] if body.event_types is not None else None,
        body.description,
        body.enabled,
        body.rotate_secret,
        secret_overlap,
        new_secret(),
    )
    if row is None:
        return None
    if body.enabled:
        # deliveries that waited while it was off go out now, and get a new retry window
        await conn.execute(
            """
            UPDATE webhook_deliveries SET next_attempt_at = now(), window_start = now()
            WHERE endpoint_id = $1 AND state = 'pending'
            """,
            endpoint_id,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, tenant_id)
    return _view(row, with_secret=body.rotate_secret)


async def delete(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, endpoint_id: str) -> bool:
    """Delete the endpoint with its deliveries; False when unknown."""
    result = await conn.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id
    )
    return result != "DELETE 0"


# ---------------------------------------------------------------- deliveries (API)

_DELIVERY_COLUMNS = """
    d.id, d.endpoint_id, d.event_id, ev.type AS event_type, ev.call_id, d.state, d.attempts,
    d.next_attempt_at, d.last_status, d.last_error, d.last_latency_ms, d.delivered_at, d.created_at
"""


def _delivery(row: asyncpg.Record, history: list[DeliveryAttempt]) -> DeliveryView:
    state = DeliveryState(row["state"])
    return DeliveryView(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        call_id=row["call_id"],
        state=state,
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if state is DeliveryState.PENDING else None,
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
        history=history,
    )


async def _histories(
    conn: asyncpg.Connection | asyncpg.Pool, ids: list[str]
) -> dict[str, list[DeliveryAttempt]]:
    rows = await conn.fetch(
        """
        SELECT delivery_id, n, at, status_code, error, latency_ms FROM webhook_attempts
        WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, n
        """,
        ids,
    )
    out: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
    for r in rows:
        out[r["delivery_id"]].append(
            DeliveryAttempt(
                n=r["n"],
                at=r["at"],
                status_code=r["status_code"],
                error=r["error"],
                latency_ms=r["latency_ms"],
            )
        )
    return out


async def list_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: str,
    endpoint_id: str,
    limit: int,
    before: tuple[datetime, str] | None = None,
    state: DeliveryState | None = None,
) -> list[DeliveryView]:
    """The endpoint's deliveries, newest first (``created_at``, ``id``), strictly before the
    keyset ``before``, optionally of one ``state``, with their attempts."""
    rows = await conn.fetch(
        f"""
        SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id
        WHERE d.endpoint_id = $1 AND d.tenant_id = $2
          AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4::text))
          AND ($5::text IS NULL OR d.state = $5)
        ORDER BY d.created_at DESC, d.id DESC LIMIT $6
        """,
        endpoint_id,
        tenant_id,
        before[0] if before else None,
        before[1] if before else None,
        state.value if state else None,
        limit,
    )
    histories = await _histories(conn, [r["id"] for r in rows])
    return [_delivery(r, histories[r["id"]]) for r in rows]


async def get_delivery(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, endpoint_id: str, delivery_id: str
) -> DeliveryView | None:
    """One delivery with its attempts, or None."""
    row = await conn.fetchrow(
        f"""
        SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id
        WHERE d.id = $1 AND d.endpoint_id = $2 AND d.tenant_id = $3
        """,
        delivery_id,
        endpoint_id,
        tenant_id,
    )
    if row is None:
        return None
    return _delivery(row, (await _histories(conn, [delivery_id]))[delivery_id])


async def redeliver(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, endpoint_id: str, delivery_id: str
) -> DeliveryView | None:
    """Queue the delivery again, now (same event, same ``webhook-id``), with a new retry
    window; None when unknown."""
    done = await conn.execute(
        """
        UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), window_start = now(),
            lease_token = NULL, lease_until = NULL
        WHERE id = $1 AND endpoint_id = $2 AND tenant_id = $3
        """,
        delivery_id,
        endpoint_id,
        tenant_id,
    )
    if done == "UPDATE 0":
        return None
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, tenant_id)
    return await get_delivery(conn, tenant_id, endpoint_id, delivery_id)


async def backlog(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """Deliveries not delivered yet (pending, every tenant): ``ringflow_webhook_backlog``."""
    return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"))


# ---------------------------------------------------------------- dispatcher


@dataclass(frozen=True, slots=True)
class Lease:
    """A delivery leased to one dispatcher until ``lease_until``: what to send and where."""

    id: str
    token: str
    endpoint_id: str
    tenant_id: str
    url: str
    secrets: tuple[str, ...]  # the current secret first, then a rotated one still in its overlap
    event_id: str
    body: str  # the JSON body, exactly as signed
    attempts: int  # attempts before this one
    window_start: datetime


def event_body(row: Any) -> str:
    """The webhook body of an event row (``id``, ``type``, ``timestamp``, ``tenant_id``,
    ``seq``, ``call_id``, ``data``), compact JSON."""
    return json.dumps(
        {
            "id": row["event_id"],
            "type": row["type"],
            "timestamp": row["occurred_at"].isoformat(),
            "tenant_id": row["tenant_id"],
            "seq": row["seq"],
            "call_id": row["call_id"],
            "data": json.loads(row["data"]),
        },
        separators=(",", ":"),
    )


async def claim(
    conn: asyncpg.Connection | asyncpg.Pool,
    now: datetime,
    lease_for: timedelta,
    limit: int,
    per_endpoint: int,
    exclude_endpoints: list[str],
) -> list[Lease]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` per endpoint, none of
    ``exclude_endpoints`` (those at their in-flight bound here), until ``now + lease_for``.

    Due: pending, enabled endpoint, ``next_attempt_at <= now``, no live lease, and the head
    of its (endpoint, call) queue (no earlier pending delivery of the same call to the same
    endpoint), so that a call's events reach an endpoint in order, one at a time. Rows
    another dispatcher holds are skipped (``SKIP LOCKED``)."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT d.id,
                   row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.seq) AS rn
            FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
            WHERE d.state = 'pending' AND d.next_attempt_at <= $1
              AND (d.lease_until IS NULL OR d.lease_until < $1)
              AND d.endpoint_id <> ALL($5::text[])
              AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries p
                  WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key
                    AND p.state = 'pending' AND p.seq < d.seq)
        ), picked AS (
            SELECT d.id FROM webhook_deliveries d
            WHERE d.id IN (SELECT id FROM due WHERE rn <= $4 ORDER BY rn LIMIT $3)
            FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE webhook_deliveries d SET lease_until = $2, lease_token = md5(random()::text || d.id)
        FROM picked, webhook_endpoints e, events ev
        WHERE d.id = picked.id AND e.id = d.endpoint_id AND ev.id = d.event_id
          AND (d.lease_until IS NULL OR d.lease_until < $1) AND d.state = 'pending'
        RETURNING d.id, d.lease_token, d.endpoint_id, d.tenant_id, e.url, e.secret, e.previous_secret,
                  e.previous_expires_at, d.event_id, ev.type, ev.occurred_at, ev.seq, ev.call_id,
                  ev.data::text AS data, d.attempts, d.window_start
        """,
        now,
        now + lease_for,
        limit,
        per_endpoint,
        exclude_endpoints,
    )
    leases = []
    for r in rows:
        keys = [r["secret"]]
        if r["previous_secret"] and r["previous_expires_at"] and r["previous_expires_at"] > now:
            keys.append(r["previous_secret"])
        leases.append(
            Lease(
                id=r["id"],
                token=r["lease_token"],
                endpoint_id=r["endpoint_id"],
                tenant_id=r["tenant_id"],
                url=r["url"],
                secrets=tuple(keys),
                event_id=r["event_id"],
                body=event_body(r),
                attempts=r["attempts"],
                window_start=r["window_start"],
            )
        )
    return leases


async def release(conn: asyncpg.Connection | asyncpg.Pool, leases: list[Lease]) -> None:
    """Give leases back unattempted (a dispatcher stopping): due again at once."""
    if leases:
        await conn.execute(
            """
            UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL
            WHERE id = ANY($1::text[]) AND lease_token = ANY($2::text[])
            """,
            [x.id for x in leases],
            [x.token for x in leases],
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result: ``status_code`` (None: no HTTP answer), ``error``, ``latency_ms``;
    ``ok`` a 2xx answer."""

    ok: bool
    status_code: int | None
    error: str | None
    latency_ms: int


async def settle(
    conn: asyncpg.Connection,
    lease: Lease,
    outcome: Outcome,
    now: datetime,
    next_attempt_at: datetime | None,
    disable_after: timedelta,
    disable_min_failures: int,
) -> str | None:
    """Record the attempt and its effect, in one transaction: the delivery is ``delivered``
    (ok), due again at ``next_attempt_at``, or ``failed`` (``next_attempt_at`` None: its
    retry window is over). The endpoint's failure streak resets on success; on failure it
    grows, and an endpoint failing for ``disable_after`` with at least
    ``disable_min_failures`` consecutive failed attempts is disabled with a reason.
    A lease lost meanwhile (expired and taken by another dispatcher) only records the
    attempt. Returns the reason when this attempt disabled the endpoint."""
    async with conn.transaction():
        n = await conn.fetchval(
            """
            INSERT INTO webhook_attempts (delivery_id, n, at, status_code, error, latency_ms)
            SELECT $1, COALESCE(max(n), 0) + 1, $2, $3, $4, $5 FROM webhook_attempts WHERE delivery_id = $1
            RETURNING n
            """,
            lease.id,
            now,
            outcome.status_code,
            outcome.error,
            outcome.latency_ms,
        )
        state = "delivered" if outcome.ok else ("pending" if next_attempt_at is not None else "failed")
        await conn.execute(
            """
            UPDATE webhook_deliveries SET state = $3, attempts = $4, last_status = $5, last_error = $6,
                last_latency_ms = $7, delivered_at = CASE WHEN $3 = 'delivered' THEN $8 ELSE delivered_at END,
                next_attempt_at = COALESCE($9, next_attempt_at), lease_until = NULL, lease_token = NULL
            WHERE id = $1 AND lease_token = $2
            """,
            lease.id,
            lease.token,
            state,
            n,
            outcome.status_code,
            outcome.error,
            outcome.latency_ms,
            now,
            next_attempt_at,
        )
        if outcome.ok:
            await conn.execute(
                """
                UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL
                WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)
                """,
                lease.endpoint_id,
            )
            return None
        row = await conn.fetchrow(
            """
            UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
                failing_since = COALESCE(failing_since, $2)
            WHERE id = $1 RETURNING consecutive_failures, failing_since, enabled
            """,
            lease.endpoint_id,
            now,
        )
        if row is None or not row["enabled"]:
            return None
        if (
            row["consecutive_failures"] >= disable_min_failures
            and now - row["failing_since"] >= disable_after
        ):
            last = f"HTTP {outcome.status_code}" if outcome.status_code is not None else outcome.error
            reason = (
                f"{row['consecutive_failures']} consecutive failed deliveries since "
                f"{row['failing_since'].isoformat()} (last: {last})"
            )
            await conn.execute(
                """
                UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, disabled_at = $3,
                    updated_at = $3
                WHERE id = $1
                """,
                lease.endpoint_id,
                reason,
                now,
            )
            return reason
        return None

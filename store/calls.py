"""Calls in PostgreSQL: the one-transaction ``record`` of a state change, line claims, and
the call history queries (``GET /v1/calls``, ``GET /v1/calls/{call_id}``).

Parties are stored as their keys (``"user:alice"``, ``"device:LOBBY-1"``, see
``Party.key``); times are timestamptz (UTC); durations are whole seconds
(``keep_time_s`` = the reference's keepTime). JSON columns are passed as text and
cast in SQL, so these functions work on any asyncpg connection whatever JSON
codecs it has.

Tenancy (issue 9, docs/design.md#tenants): call ids here are the workflow's, tenant-qualified
(``"acme~press-1"``; the default tenant's unqualified), and so are the room, event and push ids
made from them; every row's ``tenant_id`` is the tenant of its call id. Line claims and push
recipients are tenant-qualified party keys. Views (:func:`get_call`, :func:`list_calls`) show
the ids the tenant knows (the qualifier removed).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ringflow.contracts.activities import Billing, CallRecord, RecordInput
from ringflow.contracts.calls import Attempt, CallView, Phase
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.events import CallEvent
from ringflow.contracts.tenancy import DEFAULT_TENANT, party_key, tenant_of, unqualified
from store import feed, outbox


def call_id_of_room(room_id: str) -> str:
    """The building call of a room: room ids are ``"<call_id>.<attempt>"`` (``contracts/calls.py``)."""
    call_id, sep, _ = room_id.rpartition(".")
    if not sep or not call_id:
        raise ValueError(f"room id {room_id!r} is not '<call_id>.<attempt>'")
    return call_id


def _key(party: Party | None) -> str | None:
    return party.key() if party is not None else None


def _party(key: str | None) -> Party | None:
    return Party.parse_key(key) if key is not None else None


# ---------------------------------------------------------------- record


async def record(conn: asyncpg.Connection, inp: RecordInput) -> None:
    """Write one state change in ONE transaction (``RecordInput``): upsert the call row
    (None fields leave the stored value unchanged), upsert attempts, insert events
    and push messages (skipped when their id is already stored), insert billing
    once per room and, on that first insert only, take the billed seconds off the
    caller device's ``talk_quota_s`` (when it is not NULL = unlimited; never below 0),
    and the domain events of the call events with their webhook deliveries (``store.feed.write``).
    ``release``: the listener's line claimed by that room is released (another room's
    claim stays). Push recipients are NOTIFY'd at commit. Writing the same input twice
    changes nothing.
    """
    if not (inp.call or inp.attempts or inp.events or inp.pushes or inp.billing or inp.release):
        return
    # inside a caller's transaction (``ring``, ``start_call``) its writes join it: no savepoint
    async with contextlib.AsyncExitStack() as stack:
        if not conn.is_in_transaction():
            await stack.enter_async_context(conn.transaction())
        if inp.call is not None:
            await _upsert_call(conn, inp.call)
        for attempt in inp.attempts:
            await _upsert_attempt(conn, attempt)
        await _insert_events(conn, inp.events)
        if inp.billing is not None:
            await _bill(conn, inp.billing)
        await outbox.insert(conn, inp.pushes)
        if inp.release is not None:
            await release_line(conn, inp.release.party, inp.release.room_id)
        # domain events and their webhook deliveries (docs/webhooks.md): last, as its sequence
        # lock is the last lock the transaction takes
        await feed.write(conn, inp)


async def _upsert_call(conn: asyncpg.Connection, c: CallRecord) -> None:
    await conn.execute(
        """
        INSERT INTO calls (call_id, caller_kind, caller_id, caller_name, unit_id, callees, room_type,
                           strategy, phase, started_at, talk_started_at, ended_at, answered_by,
                           end_reason, err_code, keep_time_s, tenant_id, site_id, follow_up_until)
        VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19)
        ON CONFLICT (call_id) DO UPDATE SET
            follow_up_until = COALESCE(EXCLUDED.follow_up_until, calls.follow_up_until),
            site_id = COALESCE(EXCLUDED.site_id, calls.site_id),
            caller_kind = COALESCE(EXCLUDED.caller_kind, calls.caller_kind),
            caller_id = COALESCE(EXCLUDED.caller_id, calls.caller_id),
            caller_name = COALESCE(EXCLUDED.caller_name, calls.caller_name),
            unit_id = COALESCE(EXCLUDED.unit_id, calls.unit_id),
            callees = COALESCE(EXCLUDED.callees, calls.callees),
            room_type = COALESCE(EXCLUDED.room_type, calls.room_type),
            strategy = COALESCE(EXCLUDED.strategy, calls.strategy),
            phase = COALESCE(EXCLUDED.phase, calls.phase),
            started_at = COALESCE(EXCLUDED.started_at, calls.started_at),
            talk_started_at = COALESCE(EXCLUDED.talk_started_at, calls.talk_started_at),
            ended_at = COALESCE(EXCLUDED.ended_at, calls.ended_at),
            answered_by = COALESCE(EXCLUDED.answered_by, calls.answered_by),
            end_reason = COALESCE(EXCLUDED.end_reason, calls.end_reason),
            err_code = COALESCE(EXCLUDED.err_code, calls.err_code),
            keep_time_s = COALESCE(EXCLUDED.keep_time_s, calls.keep_time_s)
        """,
        c.call_id,
        c.caller.kind.value if c.caller else None,
        c.caller.id if c.caller else None,
        c.caller_name,
        c.unit_id,
        json.dumps([p.key() for p in c.callees]) if c.callees is not None else None,
        c.room_type.value if c.room_type else None,
        c.strategy.value if c.strategy else None,
        c.phase.value if c.phase else None,
        c.started_at,
        c.talk_started_at,
        c.ended_at,
        _key(c.answered_by),
        c.end_reason,
        int(c.err_code) if c.err_code is not None else None,
        c.keep_time_s,
        tenant_of(c.call_id),
        c.site_id,
        c.follow_up_until,
    )


async def _upsert_attempt(conn: asyncpg.Connection, a: Attempt) -> None:
    # Attempts are full snapshots; nullable facts, once known, are never cleared by a later write.
    await conn.execute(
        """
        INSERT INTO attempts (room_id, call_id, seq, round, listener, listener_name, fallback, phase,
                              started_at, ended_at, outcome, end_reason, err_code, reason, keep_time_s,
                              tenant_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (room_id) DO UPDATE SET
            seq = EXCLUDED.seq,
            round = EXCLUDED.round,
            listener = EXCLUDED.listener,
            listener_name = COALESCE(EXCLUDED.listener_name, attempts.listener_name),
            fallback = EXCLUDED.fallback,
            phase = EXCLUDED.phase,
            started_at = COALESCE(EXCLUDED.started_at, attempts.started_at),
            ended_at = COALESCE(EXCLUDED.ended_at, attempts.ended_at),
            outcome = COALESCE(EXCLUDED.outcome, attempts.outcome),
            end_reason = COALESCE(EXCLUDED.end_reason, attempts.end_reason),
            err_code = COALESCE(EXCLUDED.err_code, attempts.err_code),
            reason = COALESCE(EXCLUDED.reason, attempts.reason),
            keep_time_s = COALESCE(EXCLUDED.keep_time_s, attempts.keep_time_s)
        """,
        a.room_id,
        call_id_of_room(a.room_id),
        a.seq,
        a.round,
        a.listener.key(),
        a.listener_name,
        a.fallback,
        a.phase.value,
        a.started_at,
        a.ended_at,
        a.outcome.value if a.outcome else None,
        a.end_reason.value if a.end_reason else None,
        int(a.err_code) if a.err_code is not None else None,
        a.reason,
        a.keep_time_s,
        tenant_of(a.room_id),
    )


async def _insert_events(conn: asyncpg.Connection, events: Sequence[CallEvent]) -> None:
    """Insert ``events`` (one pipelined batch; an id already stored is skipped)."""
    if not events:
        return
    await conn.executemany(
        """
        INSERT INTO call_events (id, call_id, room_id, seq, name, at, party, listener, err_code,
                                 keep_time_s, reason, data, tenant_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb, $13)
        ON CONFLICT (id) DO NOTHING
        """,
        [
            (
                e.id,
                e.call_id,
                e.room_id,
                e.seq,
                e.name.value,
                e.at,
                _key(e.party),
                _key(e.listener),
                int(e.err_code) if e.err_code is not None else None,
                e.keep_time_s,
                e.reason,
                json.dumps(e.data, default=str),
                tenant_of(e.call_id) if e.call_id is not None else None,  # NULL: the NOT NULL refuses it
            )
            for e in events
        ],
    )


async def _bill(conn: asyncpg.Connection, b: Billing) -> None:
    inserted = await conn.fetchval(
        """
        INSERT INTO billing (room_id, call_id, caller, listener, keep_time_s, tenant_id)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (room_id) DO NOTHING
        RETURNING room_id
        """,
        b.room_id,
        b.call_id,
        b.caller.key(),
        b.listener.key(),
        b.keep_time_s,
        tenant_of(b.call_id),
    )
    if inserted is not None and b.caller.kind is PartyKind.DEVICE and b.keep_time_s > 0:
        # reference section 1/6: only talk time is billed, against the device's margin
        await conn.execute(
            """
            UPDATE devices SET talk_quota_s = GREATEST(talk_quota_s - $2, 0)
            WHERE tenant_id = $3 AND sn = $1 AND talk_quota_s IS NOT NULL
            """,
            b.caller.id,
            b.keep_time_s,
            tenant_of(b.call_id),
        )


# ---------------------------------------------------------------- line claims


async def claim_line(
    conn: asyncpg.Connection | asyncpg.Pool, party: Party, call_id: str, room_id: str
) -> str:
    """Claim ``party``'s line for ``room_id``; returns the room that holds it afterwards.

    The claim is one ``INSERT .. ON CONFLICT DO NOTHING``, so of many concurrent
    claims exactly one wins; claiming again from the holding room returns that room
    (claimed). The caller compares the result with ``room_id``. The line is the party's in
    the tenant of ``call_id`` (the key is tenant-qualified: tenant B's "alice" is another line).
    """
    tenant = tenant_of(call_id)
    while True:
        holder = await conn.fetchval(
            """
            WITH ins AS (
                INSERT INTO line_claims (party_key, call_id, room_id, tenant_id) VALUES ($1, $2, $3, $4)
                ON CONFLICT (party_key) DO NOTHING
                RETURNING room_id
            )
            SELECT room_id FROM ins
            UNION ALL
            SELECT room_id FROM line_claims WHERE party_key = $1
            LIMIT 1
            """,
            party_key(tenant, party),
            call_id,
            room_id,
            tenant,
        )
        if holder is not None:
            return str(holder)
        # the holder released between our insert and our read: try again


async def line_holder(
    conn: asyncpg.Connection | asyncpg.Pool, party: Party, tenant_id: str = DEFAULT_TENANT
) -> str | None:
    """The room that holds ``party``'s line (in tenant ``tenant_id``), or None."""
    holder = await conn.fetchval(
        "SELECT room_id FROM line_claims WHERE party_key = $1", party_key(tenant_id, party)
    )
    return None if holder is None else str(holder)


async def release_line(conn: asyncpg.Connection | asyncpg.Pool, party: Party, room_id: str) -> bool:
    """Release ``party``'s line (in the tenant of ``room_id``) if ``room_id`` holds it; returns
    whether a claim was removed."""
    result = await conn.execute(
        "DELETE FROM line_claims WHERE party_key = $1 AND room_id = $2",
        party_key(tenant_of(room_id), party),
        room_id,
    )
    return result != "DELETE 0"


# ---------------------------------------------------------------- queries


async def attempt_phase(conn: asyncpg.Connection | asyncpg.Pool, room_id: str) -> Phase | None:
    """The recorded phase of attempt ``room_id`` (None: no row yet, or unknown)."""
    phase = await conn.fetchval("SELECT phase FROM attempts WHERE room_id = $1", room_id)
    return None if phase is None else Phase(phase)


async def listener_phases(
    conn: asyncpg.Connection | asyncpg.Pool, call_id: str, listener: Party
) -> list[Phase]:
    """The recorded phases of ``listener``'s attempts in building call ``call_id`` (the
    workflow id, tenant-qualified), in ``seq`` order; empty when none is recorded yet. One
    indexed read (``attempts_listener_idx``)."""
    rows = await conn.fetch(
        "SELECT phase FROM attempts WHERE listener = $1 AND call_id = $2 ORDER BY seq",
        listener.key(),
        call_id,
    )
    return [Phase(r["phase"]) for r in rows]


_CALL_COLUMNS = """
    c.call_id, c.caller_kind, c.caller_id, c.caller_name, c.unit_id, c.room_type, c.strategy,
    c.phase, c.started_at, c.talk_started_at, c.ended_at, c.answered_by, c.end_reason,
    c.err_code, c.keep_time_s, c.follow_up_until,
    EXISTS (SELECT 1 FROM call_snapshots s WHERE s.tenant_id = c.tenant_id AND s.call_id = c.call_id)
        AS has_snapshot
"""

# a row is a viewable call once the workflow recorded its start (these are set together)
_COMPLETE = (
    "c.caller_id IS NOT NULL AND c.room_type IS NOT NULL AND c.strategy IS NOT NULL"
    " AND c.phase IS NOT NULL AND c.started_at IS NOT NULL"
)


def _view(row: asyncpg.Record) -> CallView:
    return CallView(
        call_id=unqualified(row["call_id"]),
        caller=Party(kind=row["caller_kind"], id=row["caller_id"]),
        caller_name=row["caller_name"],
        unit_id=row["unit_id"],
        room_type=row["room_type"],
        strategy=row["strategy"],
        phase=row["phase"],
        started_at=row["started_at"],
        talk_started_at=row["talk_started_at"],
        ended_at=row["ended_at"],
        answered_by=_party(row["answered_by"]),
        end_reason=row["end_reason"],
        err_code=row["err_code"],
        keep_time_s=row["keep_time_s"],
        follow_up_until=row["follow_up_until"],
        has_snapshot=row["has_snapshot"],
    )


async def get_call(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> CallView | None:
    """The call with its attempts (by ``seq``) and events (by ``at``, then ``seq``, then ``id``);
    None when unknown or not yet recorded with its caller, room type, strategy, phase and start.
    ``call_id`` is the workflow's (tenant-qualified, :func:`~ringflow.contracts.tenancy.qualify`);
    the view shows the tenant's own ids (call, room and event ids unqualified).

    The three reads share one snapshot (a read-only repeatable-read transaction), so a view
    never mixes a call row from before a ``record`` with events from after it."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            return await get_call(c, call_id)
    row = await conn.fetchrow(
        f"SELECT {_CALL_COLUMNS} FROM calls c WHERE c.call_id = $1 AND {_COMPLETE}", call_id
    )
    if row is None:
        return None
    view = _view(row)
    attempts = await conn.fetch("SELECT * FROM attempts WHERE call_id = $1 ORDER BY seq, room_id", call_id)
    view.attempts = [
        Attempt(
            room_id=unqualified(a["room_id"]),
            seq=a["seq"],
            round=a["round"],
            listener=Party.parse_key(a["listener"]),
            listener_name=a["listener_name"],
            fallback=a["fallback"],
            phase=a["phase"],
            started_at=a["started_at"],
            ended_at=a["ended_at"],
            outcome=a["outcome"],
            end_reason=a["end_reason"],
            err_code=a["err_code"],
            reason=a["reason"],
            keep_time_s=a["keep_time_s"],
        )
        for a in attempts
    ]
    events = await conn.fetch(
        """
        SELECT id, call_id, room_id, seq, name, at, party, listener, err_code, keep_time_s, reason,
               data::text AS data
        FROM call_events WHERE call_id = $1 ORDER BY at, n
        """,
        call_id,
    )
    view.events = [
        CallEvent(
            id=unqualified(e["id"]),
            call_id=unqualified(e["call_id"]),
            room_id=unqualified(e["room_id"]) if e["room_id"] is not None else None,
            seq=e["seq"],
            name=e["name"],
            at=e["at"],
            party=_party(e["party"]),
            listener=_party(e["listener"]),
            err_code=e["err_code"],
            keep_time_s=e["keep_time_s"],
            reason=e["reason"],
            data=_unqualified_data(json.loads(e["data"])),
        )
        for e in events
    ]
    return view


def _unqualified_data(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data with its ``room_id`` (``customAction``) as the tenant knows it."""
    room_id = data.get("room_id")
    return {**data, "room_id": unqualified(room_id)} if isinstance(room_id, str) else data


@dataclass(frozen=True)
class CallFilter:
    """History filters; None = any. ``device``: a device sn, as caller or as listener;
    ``user``: a user id, as caller, listener or answerer; ``since``/``until``:
    ``since <= started_at < until``; ``limit`` 1-500; ``cursor`` from :func:`list_calls`;
    ``tenant_id``: only that tenant's calls."""

    unit_id: str | None = None
    device: str | None = None
    user: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    end_reason: str | None = None
    phase: str | None = None
    limit: int = 50
    cursor: str | None = None
    tenant_id: str = DEFAULT_TENANT


def encode_cursor(started_at: datetime, call_id: str) -> str:
    """Opaque keyset cursor after the call (``started_at``, ``call_id``) in newest-first order."""
    raw = json.dumps([started_at.isoformat(), call_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; raises ``ValueError`` on a cursor it did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, call_id = json.loads(raw)
        return datetime.fromisoformat(at), str(call_id)
    except (binascii.Error, ValueError, TypeError) as e:
        raise ValueError("invalid cursor") from e


async def list_calls(
    conn: asyncpg.Connection | asyncpg.Pool, f: CallFilter
) -> tuple[list[CallView], str | None]:
    """Calls matching ``f``, newest first (by ``started_at``, then ``call_id``), without
    attempts and events; returns (calls, cursor of the next page or None).
    Raises ``ValueError`` on a bad cursor."""
    after: tuple[datetime, str] | None = decode_cursor(f.cursor) if f.cursor else None
    args: list[Any] = [
        f.unit_id,
        f.device,
        f.user,
        f.since,
        f.until,
        f.end_reason,
        f.phase,
        after[0] if after else None,
        after[1] if after else None,
        f.limit + 1,
        f.tenant_id,
    ]
    rows = await conn.fetch(
        f"""
        SELECT {_CALL_COLUMNS} FROM calls c
        WHERE {_COMPLETE} AND c.tenant_id = $11
          AND ($1::text IS NULL OR c.unit_id = $1)
          AND ($2::text IS NULL
               OR (c.caller_kind = 'device' AND c.caller_id = $2)
               OR EXISTS (SELECT 1 FROM attempts a
                          WHERE a.call_id = c.call_id AND a.listener = 'device:' || $2))
          AND ($3::text IS NULL
               OR (c.caller_kind = 'user' AND c.caller_id = $3)
               OR c.answered_by = 'user:' || $3
               OR EXISTS (SELECT 1 FROM attempts a
                          WHERE a.call_id = c.call_id AND a.listener = 'user:' || $3))
          AND ($4::timestamptz IS NULL OR c.started_at >= $4)
          AND ($5::timestamptz IS NULL OR c.started_at < $5)
          AND ($6::text IS NULL OR c.end_reason = $6)
          AND ($7::text IS NULL OR c.phase = $7)
          AND ($8::timestamptz IS NULL OR (c.started_at, c.call_id) < ($8, $9::text))
        ORDER BY c.started_at DESC, c.call_id DESC
        LIMIT $10
        """,
        *args,
    )
    views = [_view(r) for r in rows[: f.limit]]
    # the cursor keeps the stored (qualified) id: the keyset compares with the column
    last = rows[f.limit - 1] if len(rows) > f.limit else None
    cursor = encode_cursor(last["started_at"], last["call_id"]) if last is not None else None
    return views, cursor


# ---------------------------------------------------------------- issue 10


async def ringing_calls(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: str,
    *,
    unit_id: str | None = None,
    site_id: str | None = None,
    party: Party | None = None,
) -> list[str]:
    """The workflow ids of tenant ``tenant_id``'s calls still ringing (phase initiate or wait,
    issue 10 item 3): of unit ``unit_id`` of site ``site_id`` (None: the default site), or,
    with ``party``, every call that may ring that party (its ``callees``). Oldest first."""
    if (unit_id is None) == (party is None):
        raise ValueError("give exactly one of unit_id and party")
    rows = await conn.fetch(
        """
        SELECT call_id FROM calls
        WHERE tenant_id = $1 AND phase IN ('initiate', 'wait')
          AND ($2::text IS NULL OR (unit_id = $2 AND COALESCE(site_id, 'default') = $3))
          AND ($4::text IS NULL OR callees @> jsonb_build_array($4::text))
        ORDER BY started_at, call_id
        """,
        tenant_id,
        unit_id,
        site_id or "default",
        party.key() if party is not None else None,
    )
    return [r["call_id"] for r in rows]


async def store_snapshot(conn: asyncpg.Connection | asyncpg.Pool, call_id: str, jpeg: bytes) -> None:
    """Store the visitor snapshot (JPEG bytes, at most 4 MiB) of call ``call_id`` (the
    workflow id, tenant-qualified) with the call (issue 10 item 4); a second store of the same
    call keeps the first picture (idempotent: the activity may run twice)."""
    await conn.execute(
        """
        INSERT INTO call_snapshots (tenant_id, call_id, jpeg) VALUES ($1, $2, $3)
        ON CONFLICT (tenant_id, call_id) DO NOTHING
        """,
        tenant_of(call_id),
        call_id,
        jpeg,
    )


async def get_snapshot(conn: asyncpg.Connection | asyncpg.Pool, call_id: str) -> bytes | None:
    """The stored visitor snapshot of call ``call_id`` (workflow id), or None."""
    jpeg = await conn.fetchval(
        "SELECT jpeg FROM call_snapshots WHERE tenant_id = $1 AND call_id = $2", tenant_of(call_id), call_id
    )
    return None if jpeg is None else bytes(jpeg)

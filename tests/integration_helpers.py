"""Shared helpers of the integration, fault-injection and fuzz tests.

Each of those test modules runs ONE :class:`World` (module-scoped fixture): a whole
embedded stack (PostgreSQL, Temporal dev server, the real worker and API as child
processes) with ``examples/building.yaml`` loaded, a backend REST client, an asyncpg
pool for looking at the rows the workflows wrote, and helpers that create fresh
residents per test so that tests never share a listener's line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import websockets
from temporalio.client import Client

from ringflow.client import Backend, Handler, PartyClient
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.events import TERMINAL_EVENTS
from ringflow.directory_load import load_building, read_building
from ringflow.stack.embedded import EmbeddedStack, isolated_settings
from store.db import create_pool

BUILDING = Path(__file__).resolve().parent.parent / "examples" / "building.yaml"
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
GARAGE = Party(kind=PartyKind.DEVICE, id="GARAGE-1")
GROUP = "main-entrance"
PROBLEM_JSON = "application/problem+json"
T = TypeVar("T")


def user(uid: str) -> Party:
    return Party(kind=PartyKind.USER, id=uid)


def party_json(p: Party) -> dict[str, str]:
    return p.model_dump(mode="json")


@dataclass
class World:
    """A running embedded stack with the building loaded (see the module docstring)."""

    stack: EmbeddedStack
    pool: asyncpg.Pool
    backend: Backend
    clients: list[PartyClient | RawPushClient] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def api_key(self) -> str:
        return self.stack.settings.api_key

    async def residents(self, n: int, prefix: str = "r") -> list[Party]:
        """``n`` new users (ids unique to this call), each authorizing the main-entrance
        group, so LOBBY-1 and GARAGE-1 may call them (reference 1(1))."""
        run = uuid.uuid4().hex[:6]
        parties = []
        for i in range(n):
            uid = f"{prefix}-{run}-{i}"
            r = await self.backend.http.post("/v1/users", json={"id": uid, "name": f"Resident {uid}"})
            assert r.status_code == 201, r.text
            r = await self.backend.http.post(
                "/v1/authorizations", json={"user_id": uid, "target_kind": "group", "target_id": GROUP}
            )
            assert r.status_code in (200, 201), r.text
            parties.append(user(uid))
        return parties

    async def connect(self, party: Party, on_message: Handler | None = None) -> PartyClient:
        """A :class:`PartyClient` for ``party``, connected (closed at the end of the module)."""
        client = PartyClient(
            self.api_url, party, await self.backend.token(party), on_message=on_message, retry_s=0.1
        )
        await client.start()
        self.clients.append(client)
        return client

    async def connect_raw(self, party: Party) -> RawPushClient:
        """A :class:`RawPushClient` for ``party``, connected."""
        client = RawPushClient(self.api_url, await self.backend.token(party))
        await client.start()
        self.clients.append(client)
        return client

    async def place(
        self,
        caller: Party,
        callees: list[Party],
        strategy: str = "sequential",
        ring_timeout_s: float = 2.0,
        key: str | None = None,
        **policy: Any,
    ) -> str:
        """``POST /v1/calls`` to explicit ``callees``; returns the call id (asserts 201)."""
        key = key or f"t-{uuid.uuid4().hex[:12]}"
        body = {
            "caller": party_json(caller),
            "callees": [party_json(p) for p in callees],
            "room_type": "voice",
            "policy": {"strategy": strategy, "ring_timeout_s": ring_timeout_s, **policy},
        }
        r = await self.backend.place_call(body, key)
        assert r.status_code == 201, r.text
        return str(r.json()["call_id"])

    async def wait_ended(self, call_id: str, timeout: float) -> dict[str, Any]:
        """The call view once ``callEnded`` is recorded; raises ``TimeoutError`` after ``timeout`` s."""
        return await poll(
            lambda: self.backend.call(call_id),
            lambda v: v["phase"] == "ended" and any(e["name"] == "callEnded" for e in v["events"]),
            timeout,
            f"call {call_id} did not end",
        )

    async def wait_ended_in_db(self, call_id: str, timeout: float) -> None:
        """Like :meth:`wait_ended`, from PostgreSQL directly (works while the API is down)."""
        await poll(
            lambda: self.pool.fetchval(
                "SELECT count(*) FROM call_events WHERE call_id = $1 AND name = 'callEnded'", call_id
            ),
            lambda n: n == 1,
            timeout,
            f"call {call_id} did not end",
        )

    async def wait_phase(self, call_id: str, phase: str, timeout: float) -> dict[str, Any]:
        return await poll(
            lambda: self.backend.call(call_id), lambda v: v["phase"] == phase, timeout, f"{call_id} {phase}"
        )

    async def rows(self, call_id: str) -> dict[str, int]:
        """How many rows call ``call_id`` has in each call table."""
        counts = {}
        for table in ("calls", "attempts", "call_events", "outbox", "billing", "line_claims"):
            counts[table] = await self.pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE call_id = $1", call_id
            )
        return counts

    async def totals(self) -> dict[str, int]:
        """Row counts of every call table (to prove that a rejected request wrote nothing)."""
        counts = {}
        for table in ("calls", "attempts", "call_events", "outbox", "billing", "line_claims"):
            counts[table] = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return counts

    async def outbox_ids(self, recipient: Party, call_id: str) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM outbox WHERE recipient = $1 AND call_id = $2", recipient.key(), call_id
        )
        return {r["id"] for r in rows}

    async def workflow_count(self, workflow_id: str) -> int:
        """Workflow executions with id ``workflow_id`` (see :func:`visible_workflows`)."""
        return await visible_workflows(self.stack.client, workflow_id)


async def visible_workflows(client: Client, workflow_id: str, timeout_s: float = 15.0) -> int:
    """Executions with id ``workflow_id`` in Temporal's visibility store, which is eventually
    consistent (a just-started workflow can take seconds to show on a loaded machine): polls
    until at least one shows or ``timeout_s`` passes, then returns the count."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        count = (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if count or loop.time() > deadline:
            return count
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running_world(data_dir: Path, **settings: object) -> AsyncIterator[World]:
    """Start a stack in ``data_dir`` (headless, free loopback ports, ``settings`` overrides),
    load the building."""
    stack = EmbeddedStack(isolated_settings(data_dir, None, **settings), ui=False)
    async with stack:
        pool = await create_pool(stack.settings.database_url, min_size=1, max_size=4)
        world = World(stack, pool, Backend(stack.api_url, stack.settings.api_key))
        try:
            await load_building(pool, read_building(BUILDING))
            yield world
        finally:
            for client in world.clients:
                await client.close()
            await world.backend.aclose()
            await pool.close()


async def poll(
    probe: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    timeout: float,
    what: str,
    every: float = 0.05,
) -> T:
    """``await probe()`` until ``ready(result)``; ``TimeoutError(what)`` after ``timeout`` s.
    Errors of ``probe`` (a server restarting) count as not ready."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await probe()
            if ready(last):
                return last
        except Exception as e:  # a stack component may be restarting
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s (last: {last!r})"[:2000])
        await asyncio.sleep(every)


class RowHold:
    """One open transaction on its own connection whose uncommitted rows or row locks make
    the workflows' activities that write the same keys WAIT inside their transaction: a
    deterministic point at which to kill a process (PostgreSQL: a unique-key insert waits
    for the uncommitted insert of the same key; ``FOR UPDATE`` waits for the row lock).

    Build it with :func:`row_hold`; :meth:`release` rolls back (the waiting activity of a
    killed worker then fails with its connection, and its retry writes for real)."""

    def __init__(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        self.pool = pool
        self.conn = conn
        self.pid = 0  # the holding backend
        self._tx = conn.transaction()
        self.released = False

    async def line(self, party: Party) -> None:
        """Hold ``party``'s line: the room's ``ring`` activity waits in its line claim."""
        await self.conn.execute(
            "INSERT INTO line_claims (party_key, call_id, room_id) VALUES ($1, $2, $2)",
            party.key(),
            "fault-hold",
        )

    async def call_start(self, call_id: str) -> None:
        """Hold call ``call_id``'s row (insert it first, uncommitted): the building call's
        ``start_call`` activity (callStarted + resolve targets) waits in its call upsert.
        Call it BEFORE ``POST /v1/calls``."""
        await self.conn.execute("INSERT INTO calls (call_id) VALUES ($1)", call_id)

    async def event(self, event_id: str) -> None:
        """Hold event id ``event_id`` (e.g. ``"<call_id>#2"``, a building call's first
        ``escalated``): the ``record`` activity that writes it waits."""
        await self.conn.execute(
            "INSERT INTO call_events (id, call_id, name, at) VALUES ($1, 'fault-hold', 'hold', now())",
            event_id,
        )

    async def rows(self, sql: str, *args: object) -> None:
        """Any statement inside the hold, e.g. ``SELECT .. FOR UPDATE`` of existing rows."""
        await self.conn.execute(sql, *args)

    async def blocked(self) -> int:
        """How many other backends wait for this hold now (asked on another connection: inside
        a transaction ``pg_stat_activity`` is a snapshot taken at its first use)."""
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", self.pid
            )
        )

    async def wait_blocked(self, n: int, timeout: float, what: str) -> None:
        """Until at least ``n`` backends wait for this hold; ``TimeoutError`` after ``timeout`` s."""
        await poll(self.blocked, lambda k: k >= n, timeout, f"{what}: {n} writers wait for the hold")

    async def release(self) -> None:
        """Roll the hold back (idempotent)."""
        if not self.released:
            self.released = True
            await self._tx.rollback()


@asynccontextmanager
async def row_hold(pool: asyncpg.Pool) -> AsyncIterator[RowHold]:
    """A :class:`RowHold` on a connection of ``pool``, rolled back at the end at the latest."""
    async with pool.acquire() as conn:
        hold = RowHold(pool, conn)
        await hold._tx.start()
        hold.pid = await conn.fetchval("SELECT pg_backend_pid()")
        try:
            yield hold
        finally:
            await hold.release()


def event_order_problems(view: dict[str, Any]) -> list[str]:
    """Where the call view's events break docs/events.md: per room, ids unique, seq
    contiguous from 1, exactly one terminal event followed by ``endVoip`` then
    ``finishVoip`` (the room's last two events); building-call events start with
    ``callStarted`` and end with ``callEnded``, after every room's ``finishVoip``."""
    problems: list[str] = []
    events = view["events"]
    ids = [e["id"] for e in events]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate event ids: {sorted(i for i in ids if ids.count(i) > 1)}")
    by_room: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_room[e.get("room_id")].append(e)
    terminal = {t.value for t in TERMINAL_EVENTS}
    last_finish = None
    for room, evs in by_room.items():
        evs = sorted(evs, key=lambda e: e["seq"])
        seqs = [e["seq"] for e in evs]
        if seqs != list(range(1, len(evs) + 1)):
            problems.append(f"{room}: seq not contiguous from 1: {seqs}")
        names = [e["name"] for e in evs]
        if room is None:
            if names[:1] != ["callStarted"] or names[-1:] != ["callEnded"]:
                problems.append(f"building call events {names}")
            continue
        if names == ["targetSkipped"]:
            continue
        if names[-2:] != ["endVoip", "finishVoip"]:
            problems.append(f"{room}: does not end with endVoip, finishVoip: {names}")
        ends = [n for n in names if n in terminal]
        if len(ends) != 1 or names[-3:-2] != ends:
            problems.append(f"{room}: not exactly one terminal event just before endVoip: {names}")
        finish = evs[-1]["at"]
        last_finish = max(last_finish or finish, finish)
    ended = [e for e in by_room.get(None, []) if e["name"] == "callEnded"]
    if ended and last_finish is not None and ended[0]["at"] < last_finish:
        problems.append("callEnded before a room's finishVoip")
    return problems


def room_names(view: dict[str, Any]) -> dict[str, list[str]]:
    """Room id -> its event names in seq order."""
    rooms: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in view["events"]:
        if e.get("room_id"):
            rooms[e["room_id"]].append((e["seq"], e["name"]))
    return {room: [n for _, n in sorted(evs)] for room, evs in sorted(rooms.items())}


def outcomes(view: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(a["listener"]["id"], a["outcome"]) for a in view["attempts"]]


class RawPushClient:
    """A push-channel client that records EVERY frame as received (duplicates included)
    and acknowledges each message; reconnects every 0.1 s until :meth:`close`."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url.replace("http", "ws", 1) + f"/v1/push?token={token}"
        self.frames: list[dict[str, Any]] = []
        self.connection_of: list[int] = []  # per frame: 1 = first connection, 2 = after a reconnect, ...
        self.connects = 0
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def _run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url) as ws:
                    self.connects += 1
                    self._connected.set()
                    async for raw in ws:
                        frame = json.loads(raw)
                        self.frames.append(frame)
                        self.connection_of.append(self.connects)
                        if frame.get("id") is not None:
                            await ws.send(json.dumps({"ack": [frame["id"]]}))
            except (OSError, websockets.exceptions.WebSocketException):
                self._connected.clear()
            await asyncio.sleep(0.1)

    def ids(self, call_id: str, connection: int | None = None) -> list[str]:
        """Ids of the frames received for ``call_id`` (on ``connection`` only, when given),
        in order, duplicates included."""
        return [
            f["id"]
            for f, n in zip(self.frames, self.connection_of, strict=True)
            if f.get("call_id") == call_id and "id" in f and connection in (None, n)
        ]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

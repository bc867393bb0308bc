"""Soak (issue 4, not in CI): many building calls through the public API while the
stack is hurt, then a count of everything that must never go wrong.

One embedded stack; ``--units`` units of two residents (A, B; sequential, ring timeout
``--ring-timeout`` s) and ``DEVICES`` door stations, every one a connected
:class:`~ringflow.client.PartyClient` (the doors receive ``call_answered``/``call_ended``).
``--calls`` building calls (default 1,000) are placed open loop at ``--rate`` calls/s (1.5),
call ``i`` from door ``i % DEVICES`` to unit ``i % units``; a POST that fails (API or
PostgreSQL down) is retried with the same Idempotency-Key, as a backend would. The
residents act by a deterministic mix on ``i % 4`` (:data:`MIX`): A answers; A rejects
and B answers; nobody answers; A lets it ring and B answers. Whoever answers talks
``TALK_S`` s and hangs up; actions that fail (API down, 503) are retried; ``time_limit_s``
``TIME_LIMIT_S`` ends a talk whose hang-up got lost.

Spread evenly over the placing window (one fault at a time, each waiting for the
previous to be done): ``--worker-kills`` kill -9 of the worker (default 10, each followed
by a new worker), ``--api-restarts`` kill -9 + restart of the API (default 1: every
socket drops and reconnects) and ``--pg-restarts`` PostgreSQL stop/start
(default 1, ``PG_DOWN_S`` s down).

Then it waits (``--drain`` s at most) until every call has ``callEnded`` and every push
is acknowledged, reads every call's history through ``GET /v1/calls/{id}`` and reports,
as a table and JSON (``bench.common.emit``):

- calls started (POST 201/200), calls whose every rung attempt has ``endVoip`` and
  ``finishVoip`` (``targetSkipped`` attempts have no room), calls with ``callEnded``;
- pushes lost: per connected client, the outbox ids of the soak's calls addressed to it
  minus the ids it received (de-duplicated by id); and the reverse (phantoms);
- listeners double-claimed: per listener, its outbox in ``seq`` order opens a room with
  ``incoming_call`` and closes it with ``call_cancelled``/``call_ended`` (every rung room
  sends exactly one of each, docs/events.md); an ``incoming_call`` while another room is
  open is a double claim. ``seq`` order is claim order: a room claims the line only
  after the previous holder's finish (which wrote its closing push) released it;
- duplicated event ids, rooms with more than one ``ringing``, and event-order problems
  (per room: seq contiguous, one terminal event, then ``endVoip``, ``finishVoip``);
- lines still claimed at the end, run time;
- what residents saw (not pass/fail: faults and queueing legitimately change outcomes):
  calls whose outcomes differ from the mix, refused answers/rejects by problem detail,
  those refused while the room went on ringing (with the Temporal histories around the
  first two of each kind), each unanswered room's ring window at the socket (``incoming_call`` to
  its closing push) and the set-up latency (first POST to the first ``incoming_call``).

Must be 0: pushes lost, double claims, duplicated ids, calls not ended.

``python -m bench.soak [--calls N] [--rate R] [--units U] [--ring-timeout S]
[--worker-kills K] [--api-restarts 1] [--pg-restarts 1] [--json-out FILE]``
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from bench.common import (
    Bench,
    Directory,
    call_body,
    close_all,
    connect_residents,
    device,
    emit,
    info,
    load_directory,
    machine,
    open_bench,
    parser,
    pct,
    summary_ms,
    table,
)
from ringflow.client import PartyClient, Received
from ringflow.stack.embedded import EmbeddedStack

DEVICES = 4
"""Door stations (callers), each a connected client."""
TALK_S = 1.0
"""How long a resident who answered talks before hanging up, seconds."""
TIME_LIMIT_S = 30.0
"""``time_limit_s`` of every call: ends a talk whose hang-up was lost (never expected)."""
PG_DOWN_S = 3.0
"""How long PostgreSQL stays stopped in its restart, seconds."""
ACTION_RETRY_S = 60.0
"""How long a resident keeps retrying an action that failed for a transient reason."""
TERMINAL = {
    "busy",
    "timeout",
    "cancelVoip",
    "rejectVoip",
    "hangUpVoip",
    "abortVoip",
    "joinFailCaller",
    "joinFailListener",
}
"""The rooms' terminal events (``ringflow.contracts.events.TERMINAL_EVENTS``)."""

IDS = re.compile(r"[\w:.-]*\d[\w:.-]*")
"""Ids in a problem detail (masked to group refusals by kind)."""

MIX: list[tuple[str, str]] = [
    ("answer", "ring"),
    ("reject", "answer"),
    ("ring", "ring"),
    ("ring", "answer"),
]
"""Per ``i % 4``: what resident A and resident B do when rung (ring = let it ring)."""
EXPECTED: list[list[str]] = [
    ["answered"],
    ["rejected", "answered"],
    ["no_answer", "no_answer"],
    ["no_answer", "answered"],
]
"""The attempt outcomes :data:`MIX` leads to when nothing interferes."""


def call_index(call_id: str) -> int | None:
    """``i`` of call id ``"soak-<run>-<i>"``; None for another call."""
    head, _, tail = call_id.rpartition("-")
    return int(tail) if head.startswith("soak-") and tail.isdigit() else None


@dataclass
class Tally:
    """What the run did, for the report."""

    started: dict[int, str] = field(default_factory=dict)  # i -> call id
    post_retries: int = 0
    post_failed: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)  # "answer 200", "hang-up retry", ...
    refusals: Counter[str] = field(default_factory=Counter)  # "answer: <problem detail, ids masked>"
    refused: list[str] = field(default_factory=list)  # "<call id> <action> <detail>", the first 20
    refused_at: list[tuple[PartyClient, str, str, float]] = field(default_factory=list)
    """(resident, room id, kind, time.monotonic()) of every refused answer/reject."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    posted_at: dict[int, float] = field(default_factory=dict)  # i -> time.monotonic() of the 1st POST


class Residents:
    """The residents' behaviour (:data:`MIX`): the ``on_message`` of every resident client."""

    def __init__(self, api_url: str, tally: Tally) -> None:
        self.http = httpx.AsyncClient(base_url=api_url, timeout=40.0)
        self.tally = tally

    async def act(self, client: PartyClient, call_id: str, name: str, room: str = "") -> int | None:
        """``POST /v1/calls/{call_id}/{name}`` as ``client``; retried for ``ACTION_RETRY_S`` s
        while the API is unreachable or answers 5xx. Returns the final status (None: gave up)."""
        deadline = time.monotonic() + ACTION_RETRY_S
        while True:
            try:
                r = await self.http.post(
                    f"/v1/calls/{call_id}/{name}", headers={"Authorization": f"Bearer {client.token}"}
                )
                if r.status_code < 500:
                    self.tally.actions[f"{name} {r.status_code}"] += 1
                    if r.status_code >= 400:
                        detail = str(r.json().get("detail"))
                        kind = f"{name}: {IDS.sub('<id>', detail)}"
                        self.tally.refusals[kind] += 1
                        self.tally.refused_at.append((client, room, kind, time.monotonic()))
                        if len(self.tally.refused) < 20:
                            self.tally.refused.append(f"{call_id} {name} {detail}")
                    return r.status_code
            except httpx.HTTPError:
                pass
            self.tally.actions[f"{name} retry"] += 1
            if time.monotonic() > deadline:
                self.tally.actions[f"{name} gave up"] += 1
                return None
            await asyncio.sleep(1.0)

    async def on_message(self, client: PartyClient, msg: Received) -> None:
        if msg.type != "incoming_call" or msg.call_id is None:
            return
        i = call_index(msg.call_id)
        if i is None:
            return
        position = int(client.party.id.rsplit("-", 1)[1])  # br-<tag>-<unit>-<0 = A, 1 = B>
        what = MIX[i % len(MIX)][position]
        if what == "reject":
            await self.act(client, msg.call_id, "reject", str(msg.frame.get("room_id")))
        elif what == "answer":
            status = await self.act(client, msg.call_id, "answer", str(msg.frame.get("room_id")))
            if status in (200, None):  # None: it may have been applied
                await asyncio.sleep(TALK_S)
                await self.act(client, msg.call_id, "hang-up")

    async def aclose(self) -> None:
        await self.http.aclose()


# ---------------------------------------------------------------- load and faults


async def place_all(bench: Bench, directory: Directory, args: Any, tally: Tally) -> None:
    """Place ``args.calls`` calls at ``args.rate`` calls/s (open loop); each POST is retried
    with its Idempotency-Key until 201/200 (at most ``ACTION_RETRY_S`` s)."""
    units = list(directory.units)

    async def one(i: int) -> None:
        key = f"soak-{bench.run_id}-{i}"
        body = call_body(directory.devices[i % DEVICES], units[i % len(units)], args.ring_timeout)
        body["time_limit_s"] = TIME_LIMIT_S
        deadline = time.monotonic() + ACTION_RETRY_S
        tally.posted_at[i] = time.monotonic()
        while True:
            try:
                r = await bench.backend.place_call(body, key)
                if r.status_code in (200, 201):
                    tally.started[i] = key
                    return
                if r.status_code < 500:
                    tally.post_failed.append(f"{key}: {r.status_code} {r.text[:200]}")
                    return
            except httpx.HTTPError:
                pass
            tally.post_retries += 1
            if time.monotonic() > deadline:
                tally.post_failed.append(f"{key}: no answer in {ACTION_RETRY_S:g} s")
                return
            await asyncio.sleep(1.0)

    t0 = time.monotonic()
    tasks = []
    for i in range(args.calls):
        delay = t0 + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
        if (i + 1) % 100 == 0:
            info(f"[soak] {i + 1} calls placed in {time.monotonic() - t0:.0f} s")
    await asyncio.gather(*tasks)


def fault_plan(args: Any) -> list[str]:
    """The faults in order: worker kills with the API and PostgreSQL restarts spread among
    them (at about 1/3 and 2/3 of the run)."""
    plan = ["worker"] * args.worker_kills
    for k in range(args.api_restarts):
        plan.insert(round(len(plan) * (k + 1) / (3 * max(1, args.api_restarts))), "api")
    for k in range(args.pg_restarts):
        plan.insert(round(len(plan) * (k + 2) / (3 * max(1, args.pg_restarts))), "postgres")
    return plan


async def inject(stack: EmbeddedStack, plan: list[str], window_s: float, tally: Tally) -> None:
    """Run ``plan``'s faults at ``window_s * (k + 1) / (len(plan) + 1)`` s from now, one at a time."""
    t0 = time.monotonic()
    for k, fault in enumerate(plan):
        delay = t0 + window_s * (k + 1) / (len(plan) + 1) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        at = time.monotonic() - t0
        if fault == "worker":
            await stack.kill_worker()
            await stack.start_worker()
        elif fault == "api":
            await stack.kill_api()
            await stack.start_api()
        else:
            await asyncio.to_thread(stack.postgres.stop)
            await asyncio.sleep(PG_DOWN_S)
            await asyncio.to_thread(stack.postgres.start)
        took = time.monotonic() - t0 - at
        tally.faults.append({"fault": fault, "at_s": round(at, 1), "back_after_s": round(took, 1)})
        info(f"[soak] fault {k + 1}/{len(plan)}: {fault} at {at:.0f} s, back after {took:.1f} s")


# ---------------------------------------------------------------- checks


async def db_retry(bench: Bench, sql: str, *args: Any) -> list[Any]:
    """``bench.pool.fetch`` retried for 30 s (the pool's connections die with a PostgreSQL restart)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return list(await bench.pool.fetch(sql, *args))
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def drain(bench: Bench, call_ids: list[str], clients: dict[str, PartyClient], limit_s: float) -> float:
    """Wait until every call has ``callEnded`` and every client received every push of the
    soak's calls addressed to it; returns the seconds waited (``limit_s`` at most)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        rows = await db_retry(
            bench,
            "SELECT count(*) AS n FROM call_events WHERE call_id = ANY($1::text[]) AND name = 'callEnded'",
            call_ids,
        )
        lost = await lost_pushes(bench, call_ids, clients)
        if rows[0]["n"] >= len(call_ids) and not any(lost.values()):
            break
        missing = sum(map(len, lost.values()))
        info(f"[soak] waiting: {len(call_ids) - rows[0]['n']} calls not ended, {missing} pushes not received")
        await asyncio.sleep(5.0)
    return time.monotonic() - t0


async def lost_pushes(
    bench: Bench, call_ids: list[str], clients: dict[str, PartyClient]
) -> dict[str, set[str]]:
    """Per client (party key): outbox ids of ``call_ids`` addressed to it that it did not receive."""
    rows = await db_retry(bench, "SELECT id, recipient FROM outbox WHERE call_id = ANY($1::text[])", call_ids)
    by_recipient: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_recipient[r["recipient"]].add(r["id"])
    lost = {}
    for client in clients.values():
        key = client.party.key()
        got = {str(m.frame.get("id")) for m in client.received}
        lost[key] = by_recipient.get(key, set()) - got
    return lost


async def double_claims(bench: Bench, call_ids: list[str]) -> list[str]:
    """Listeners rung for a room while another of their rooms was still open (see the module
    docstring), from the outbox in ``seq`` order (only pushes of the soak's calls)."""
    rows = await db_retry(
        bench,
        """
        SELECT recipient, room_id, type, seq FROM outbox
        WHERE call_id = ANY($1::text[]) AND recipient LIKE 'user:%'
        ORDER BY recipient, seq
        """,
        call_ids,
    )
    return overlaps([(r["recipient"], r["room_id"], r["type"]) for r in rows])


def overlaps(pushes: list[tuple[str, str, str]]) -> list[str]:
    """``pushes`` = (recipient, room id, type) in outbox ``seq`` order: every ``incoming_call``
    that came while another room of the same recipient was open (not yet closed by its
    ``call_cancelled``/``call_ended``)."""
    problems = []
    open_rooms: dict[str, set[str]] = defaultdict(set)
    for recipient, room, type_ in pushes:
        rooms = open_rooms[recipient]
        if type_ == "incoming_call":
            if rooms:
                problems.append(f"{recipient}: rung for {room} while {sorted(rooms)} open")
            rooms.add(room)
        elif type_ in ("call_cancelled", "call_ended"):
            rooms.discard(room)
    return problems


def room_problems(view: dict[str, Any]) -> list[str]:
    """Per room: ids unique, seq contiguous from 1, at most one ``ringing``, exactly one
    terminal event just before ``endVoip``, ``finishVoip`` (the last two); building-call
    events: ``callStarted`` first, ``callEnded`` last, once each."""
    problems = []
    rooms: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for e in view["events"]:
        rooms[e.get("room_id")].append(e)
    for room, evs in rooms.items():
        evs.sort(key=lambda e: e["seq"])
        names = [e["name"] for e in evs]
        if [e["seq"] for e in evs] != list(range(1, len(evs) + 1)):
            problems.append(f"{room}: seq {[e['seq'] for e in evs]}")
        if room is None:
            if names[:1] != ["callStarted"] or names[-1:] != ["callEnded"] or names.count("callEnded") > 1:
                problems.append(f"{view['call_id']}: {names}")
            continue
        if names == ["targetSkipped"]:
            continue
        if names.count("ringing") > 1:
            problems.append(f"{room}: rung {names.count('ringing')} times")
        ends = [n for n in names if n in TERMINAL]
        if names[-2:] != ["endVoip", "finishVoip"] or len(ends) != 1 or names[-3:-2] != ends:
            problems.append(f"{room}: {names}")
    return problems


def ring_windows(clients: dict[str, PartyClient]) -> list[float]:
    """Per room that rang a resident: seconds from its ``incoming_call`` to its closing push
    (``call_cancelled``/``call_ended``) at the resident's socket, for rooms the resident did
    not answer or reject (how long it could have answered)."""
    windows = []
    for client in clients.values():
        rung: dict[str, float] = {}
        acted: set[str] = set()
        for m in client.received:
            room = str(m.frame.get("room_id"))
            i = call_index(str(m.call_id))
            if i is None:
                continue
            if m.type == "incoming_call":
                rung[room] = m.received_at
                if MIX[i % len(MIX)][int(client.party.id.rsplit("-", 1)[1])] != "ring":
                    acted.add(room)
            elif m.type in ("call_cancelled", "call_ended") and room in rung and room not in acted:
                windows.append(m.received_at - rung[room])
    return windows


def setup_latency(clients: dict[str, PartyClient], tally: Tally) -> list[float]:
    """Per call: seconds from its first POST to its first ``incoming_call`` at a resident."""
    first: dict[int, float] = {}
    for client in clients.values():
        for m in client.received:
            i = call_index(str(m.call_id))
            if i is not None and m.type == "incoming_call":
                first[i] = min(first.get(i, m.received_at), m.received_at)
    return [at - tally.posted_at[i] for i, at in first.items() if i in tally.posted_at]


def refused_while_ringing(tally: Tally, after_s: float = 0.5) -> list[dict[str, Any]]:
    """The refused answers/rejects after which the room went on ringing for at least
    ``after_s`` s (its closing push reached the resident that much later): kind, call, room,
    wall-clock time of the refusal (s since the epoch) and seconds until the closing push."""
    wall = time.time() - time.monotonic()
    out = []
    for client, room, kind, at in tally.refused_at:
        closed = [
            m.received_at
            for m in client.received
            if m.frame.get("room_id") == room and m.type in ("call_cancelled", "call_ended")
        ]
        if closed and min(closed) - at >= after_s:
            call_id = room.rpartition(".")[0]
            out.append(
                {
                    "kind": kind,
                    "call_id": call_id,
                    "room_id": room,
                    "at": at + wall,
                    "rang_on_s": min(closed) - at,
                }
            )
    return out


async def history_around(bench: Bench, workflow_id: str, at: float, span_s: float = 5.0) -> list[str]:
    """Workflow ``workflow_id``'s history events within ``span_s`` s of ``at`` (epoch seconds):
    ``"<offset s> <event type>"`` (evidence for refusals); none for an id that is no workflow
    (a room of the one-workflow shape lives inside its building call's history)."""
    try:
        history = await bench.client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        return []
    out = []
    for ev in history.events:
        t = ev.event_time.ToDatetime().replace(tzinfo=UTC).timestamp()
        if abs(t - at) <= span_s:
            out.append(f"{t - at:+.3f} {EventType.Name(ev.event_type).removeprefix('EVENT_TYPE_')}")
    return out


async def views(bench: Bench, call_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``GET /v1/calls/{id}`` of every call (10 at a time, each retried for 30 s)."""
    sem = asyncio.Semaphore(10)
    out: dict[str, dict[str, Any]] = {}

    async def one(call_id: str) -> None:
        async with sem:
            deadline = time.monotonic() + 30
            while True:
                try:
                    out[call_id] = await bench.backend.call(call_id)
                    return
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(1.0)

    await asyncio.gather(*(one(c) for c in call_ids))
    return out


# ---------------------------------------------------------------- run


async def run(args: Any) -> dict[str, Any]:
    tally = Tally()
    plan = fault_plan(args)
    async with open_bench("soak", args) as bench:
        stack = bench.stack
        if stack is None:
            raise SystemExit("the soak kills processes: it needs its own embedded stack (no --api-url)")
        directory = await load_directory(
            bench, args.units, 2, n_devices=DEVICES, ring_timeout_s=args.ring_timeout
        )
        residents = Residents(bench.api_url, tally)
        resident_ids = [r for rs in directory.units.values() for r in rs]
        clients = await connect_residents(bench, resident_ids, residents.on_message)
        doors = await connect_parties(bench, [device(sn) for sn in directory.devices])
        everyone = {**clients, **doors}
        window = args.calls / args.rate
        info(f"[soak] {args.calls} calls at {args.rate:g}/s over {window:.0f} s; faults: {plan}")
        t0 = time.monotonic()
        try:
            await asyncio.gather(place_all(bench, directory, args, tally), inject(stack, plan, window, tally))
            placed_s = time.monotonic() - t0
            call_ids = [tally.started[i] for i in sorted(tally.started)]
            drained_s = await drain(bench, call_ids, everyone, args.drain)
            run_s = time.monotonic() - t0
            info(f"[soak] reading {len(call_ids)} calls' histories ...")
            history = await views(bench, call_ids)
            lost = await lost_pushes(bench, call_ids, everyone)
            claims = await double_claims(bench, call_ids)
            outbox_ids = {
                r["id"]
                for r in await db_retry(
                    bench, "SELECT id FROM outbox WHERE call_id = ANY($1::text[])", call_ids
                )
            }
            phantoms = sorted(
                str(m.frame.get("id"))
                for c in everyone.values()
                for m in c.received
                if call_index(str(m.call_id)) is not None and m.frame.get("id") not in outbox_ids
            )
            still_claimed = await db_retry(
                bench, "SELECT party_key, room_id FROM line_claims WHERE call_id = ANY($1::text[])", call_ids
            )
            windows = ring_windows(clients)
            ringing_refusals = refused_while_ringing(tally)
            kept: Counter[str] = Counter()
            for case in ringing_refusals:  # the histories of the first two of each kind
                kept[case["kind"]] += 1
                if kept[case["kind"]] <= 2:
                    case["parent_history"] = await history_around(bench, case["call_id"], case["at"])
                    case["room_history"] = await history_around(bench, case["room_id"], case["at"])
            setups = setup_latency(clients, tally)
            unacked = await db_retry(
                bench,
                "SELECT count(*) AS n FROM outbox WHERE call_id = ANY($1::text[]) AND acked_at IS NULL",
                call_ids,
            )
        finally:
            await close_all(everyone)
            await residents.aclose()

    ended = endvoip_all = 0
    event_ids: Counter[str] = Counter()
    problems: list[str] = []
    off_mix: list[str] = []
    end_reasons: Counter[str] = Counter()
    for i, call_id in sorted((i, c) for i, c in tally.started.items()):
        view = history[call_id]
        names = [e["name"] for e in view["events"]]
        event_ids.update(e["id"] for e in view["events"])
        if "callEnded" in names and view["phase"] == "ended":
            ended += 1
            end_reasons[str(view["end_reason"])] += 1
        rung = {a["room_id"] for a in view["attempts"] if a["outcome"] != "skipped"}
        finished = {e["room_id"] for e in view["events"] if e["name"] == "endVoip"}
        finished_twice = {e["room_id"] for e in view["events"] if e["name"] == "finishVoip"}
        if rung and rung <= finished and rung <= finished_twice:
            endvoip_all += 1
        problems += room_problems(view)
        got = [a["outcome"] for a in view["attempts"]]
        if got != EXPECTED[i % len(EXPECTED)]:
            off_mix.append(f"{call_id}: {got}")
    duplicated = sorted(k for k, n in event_ids.items() if n > 1)
    short = sum(w < 0.9 * args.ring_timeout for w in windows)
    n_lost = sum(len(v) for v in lost.values())
    started = len(tally.started)
    rows = [
        {"what": "calls placed (POST)", "value": args.calls, "must": "-"},
        {"what": "calls started (201/200)", "value": started, "must": args.calls},
        {"what": "calls with endVoip + finishVoip in every rung room", "value": endvoip_all, "must": started},
        {"what": "calls with callEnded", "value": ended, "must": started},
        {"what": "pushes in the outbox for connected clients", "value": len(outbox_ids), "must": "-"},
        {"what": "pushes lost", "value": n_lost, "must": 0},
        {"what": "pushes received that the outbox does not hold", "value": len(phantoms), "must": 0},
        {"what": "pushes never acknowledged", "value": unacked[0]["n"], "must": 0},
        {"what": "listeners double-claimed", "value": len(claims), "must": 0},
        {"what": "duplicated event ids", "value": len(duplicated), "must": 0},
        {"what": "event order problems (incl. rooms rung twice)", "value": len(problems), "must": 0},
        {"what": "lines still claimed at the end", "value": len(still_claimed), "must": 0},
        {"what": "calls whose outcomes differ from the mix", "value": len(off_mix), "must": "-"},
        {"what": "answers refused (409)", "value": tally.actions["answer 409"], "must": "-"},
        {
            "what": "answers/rejects refused while the room rang on >= 0.5 s",
            "value": len(ringing_refusals),
            "must": "-",
        },
        {
            "what": f"unanswered rings shorter than 0.9 x {args.ring_timeout:g} s at the socket",
            "value": f"{short} of {len(windows)}",
            "must": "-",
        },
        {
            "what": "ring window at the socket p50 / min s",
            "value": f"{pct(windows, 50):.2f} / {pct(windows, 0):.2f}",
            "must": "-",
        },
        {
            "what": "setup: POST -> first incoming_call p50 / p99 s",
            "value": f"{pct(setups, 50):.2f} / {pct(setups, 99):.2f}",
            "must": "-",
        },
        {"what": "POST retries (API/PostgreSQL down)", "value": tally.post_retries, "must": "-"},
        {"what": "faults injected", "value": len(tally.faults), "must": len(plan)},
        {"what": "placing window s", "value": placed_s, "must": "-"},
        {"what": "drain after the last call placed s", "value": drained_s, "must": "-"},
        {"what": "run time s", "value": run_s, "must": "-"},
    ]
    ok = (
        started == args.calls
        and endvoip_all == ended == started
        and n_lost == 0
        and not phantoms
        and not claims
        and not duplicated
        and not problems
        and not still_claimed
        and unacked[0]["n"] == 0
    )
    result = {
        "ok": ok,
        "calls": args.calls,
        "rate_per_s": args.rate,
        "units": args.units,
        "ring_timeout_s": args.ring_timeout,
        "rows": rows,
        "end_reasons": dict(end_reasons),
        "actions": dict(tally.actions),
        "refusals": dict(tally.refusals),
        "refused": tally.refused,
        "refused_while_ringing": [c for c in ringing_refusals if "parent_history" in c]
        + [c for c in ringing_refusals if "parent_history" not in c][:10],
        "faults": tally.faults,
        "post_failed": tally.post_failed[:20],
        "lost": {k: sorted(v)[:20] for k, v in lost.items() if v},
        "phantoms": phantoms[:20],
        "double_claims": claims[:20],
        "duplicated_event_ids": duplicated[:20],
        "event_problems": problems[:20],
        "still_claimed": [dict(r) for r in still_claimed[:20]],
        "off_mix": off_mix[:20],
        "ring_window": summary_ms(windows),
        "setup": summary_ms(setups),
        "machine_after": machine(),
    }
    emit(
        "soak",
        result,
        [
            table(f"soak: {args.calls} calls at {args.rate:g}/s, faults {Counter(plan)}", rows),
            table("faults", tally.faults),
            f"end reasons: {dict(end_reasons)}; resident actions: {dict(tally.actions)}; "
            f"refusals: {dict(tally.refusals)}; "
            f"of them while the room rang on: {dict(Counter(c['kind'] for c in ringing_refusals))}; "
            f"{'OK' if ok else 'FAILED'}",
        ],
        args.json_out,
    )
    return result


async def connect_parties(bench: Bench, parties: list[Any]) -> dict[str, PartyClient]:
    """A connected :class:`PartyClient` (no handler) per party (the door stations)."""
    out = {}
    for p in parties:
        client = PartyClient(bench.api_url, p, await bench.backend.token(p), retry_s=0.2)
        await client.start(timeout=30.0)
        out[p.key()] = client
    return out


def main() -> None:
    p = parser("soak: building calls under worker kills and API/PostgreSQL restarts")
    p.add_argument("--calls", type=int, default=1000, help="building calls (default 1000)")
    p.add_argument("--rate", type=float, default=1.5, help="calls placed per second (default 1.5)")
    p.add_argument("--units", type=int, default=100, help="units of two residents (default 100)")
    p.add_argument("--ring-timeout", type=float, default=3.0, help="ring timeout per resident, s (default 3)")
    p.add_argument("--worker-kills", type=int, default=10)
    p.add_argument("--api-restarts", type=int, default=1)
    p.add_argument("--pg-restarts", type=int, default=1)
    p.add_argument("--drain", type=float, default=600.0, help="longest wait for the calls to end, s")
    args = p.parse_args()
    result = asyncio.run(run(args))
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()

"""Fault injection (issues 2 and 4) on ONE embedded stack with ring timeouts of ~2 s:
kill -9 of the worker while ringing, in talk and at the finish, and during initiate
(``start_call``, the first ``ring``) and between targets (``escalated``, the next ``ring``);
an API kill with pushes pending; PostgreSQL stopped mid-call; an offline resident; two
answers in the same millisecond. Every call must end, on time, with the events of
docs/events.md, no room rung twice, no event lost or duplicated, every push delivered
exactly once per client. A kill lands inside a chosen activity deterministically: a
:class:`~tests.integration_helpers.RowHold` makes that activity wait in PostgreSQL first.

"On time" margins: a worker killed by SIGKILL leaves its sticky task queue behind, and
the server hands the next workflow task to a new worker only after the sticky
schedule-to-start timeout (``RINGFLOW_WORKER_STICKY_TIMEOUT_S``, 3 s); activities lost mid-flight are retried
after their start-to-close timeout. The margins below allow for that, no more.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio

from ringflow.client import PartyClient, Received
from ringflow.contracts.common import Party
from tests.integration_helpers import (
    LOBBY,
    World,
    event_order_problems,
    outcomes,
    poll,
    room_names,
    row_hold,
    running_world,
    user,
)

pytestmark = pytest.mark.integration

RING_S = 2.0
WORKER_LOSS_S = 15.0
"""What a SIGKILLed worker may add before a new one carries on (sticky queue timeout + slack)."""
FINISH_LOSS_S = 20.0
"""... and when it dies inside the finish's ``record`` activity: that activity's start-to-close
timeout (workflows/events.py ``RECORD_TIMEOUT``), the retry and the sticky queue timeout."""


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(tmp_path_factory.mktemp("faults")) as w:
        yield w


def incoming(call_id: str) -> Callable[[Received], bool]:
    return lambda m: m.call_id == call_id and m.type == "incoming_call"


def ended_push(call_id: str) -> Callable[[Received], bool]:
    return lambda m: m.call_id == call_id and m.type == "call_ended"


async def act(world: World, party: Party, call_id: str, name: str) -> httpx.Response:
    """``POST /v1/calls/{call_id}/{name}`` as ``party``, waiting up to 40 s for the answer."""
    token = await world.backend.token(party)
    async with httpx.AsyncClient(base_url=world.api_url, timeout=40) as http:
        return await http.post(f"/v1/calls/{call_id}/{name}", headers={"Authorization": f"Bearer {token}"})


async def answer_then_hang_up(client: PartyClient, msg: Received) -> None:
    """A resident who answers every ``incoming_call`` (asserting 200) and hangs up 0.5 s later."""
    if msg.type == "incoming_call":
        r = await client.action(str(msg.call_id), "answer")
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.5)
        await client.action(str(msg.call_id), "hang-up")


def ringing_per_room(view: dict) -> Counter[str]:  # type: ignore[type-arg]
    return Counter(e["room_id"] for e in view["events"] if e["name"] == "ringing")


def assert_rung_once(view: dict, clients: list[PartyClient]) -> None:  # type: ignore[type-arg]
    """Exactly one ``ringing`` per rung room, one ``incoming_call`` per resident and room."""
    rooms = [a["room_id"] for a in view["attempts"] if a["outcome"] not in ("busy", "skipped")]
    assert ringing_per_room(view) == Counter(rooms)
    for c in clients:
        rings = [
            m.frame["room_id"]
            for m in c.received
            if m.call_id == view["call_id"] and m.type == "incoming_call"
        ]
        assert len(rings) == len(set(rings)) <= 1, (c.party, rings)


async def test_worker_killed_while_ringing_in_talk_and_at_the_finish(world: World) -> None:
    """ONE kill -9 hits three calls: R rings its first resident (sequential a, b, c), T is in
    talk, F's finish is inside its ``record`` activity (held there by a row lock). A new
    worker carries all three on, on time."""
    a, b, c, d, e = await world.residents(5, "kill")

    ca, cb, cd, ce = [await world.connect(p) for p in (a, b, d, e)]
    cc = await world.connect(c, answer_then_hang_up)
    talk, finish = await asyncio.gather(
        world.place(LOBBY, [d], ring_timeout_s=RING_S), world.place(LOBBY, [e], ring_timeout_s=RING_S)
    )
    for call_id, client in ((talk, cd), (finish, ce)):
        await client.wait_for(incoming(call_id))
        assert (await client.action(call_id, "answer")).status_code == 200
        await world.wait_phase(call_id, "talk", 10)
    ring = await world.place(LOBBY, [a, b, c], ring_timeout_s=RING_S + 1)
    first = await ca.wait_for(incoming(ring))

    async with row_hold(world.pool) as hold:
        await hold.rows("SELECT 1 FROM attempts WHERE call_id = $1 FOR UPDATE", finish)
        hang_up = asyncio.create_task(act(world, e, finish, "hang-up"))
        await hold.wait_blocked(1, 10, "the finish's record")
        await world.stack.kill_worker()
        killed_at = time.monotonic()
        await hold.release()
    assert killed_at - first.received_at < RING_S + 1  # a was still ringing
    await world.stack.start_worker()

    # T: the hang-up reaches the workflow once the server gives up on the dead worker's
    # sticky queue (longer than PartyClient's 5 s HTTP timeout: a patient request).
    r = await act(world, d, talk, "hang-up")
    assert r.status_code == 200, r.text
    assert time.monotonic() - killed_at < WORKER_LOSS_S
    # R: b rings within a's ring timeout + the loss, rings fully, then c answers.
    second = await cb.wait_for(incoming(ring), timeout=RING_S + WORKER_LOSS_S)
    assert second.received_at - first.received_at < RING_S + 1 + WORKER_LOSS_S
    third = await cc.wait_for(incoming(ring), timeout=RING_S + WORKER_LOSS_S)
    assert third.received_at - second.received_at >= (RING_S + 1) * 0.9
    # F: the finish's record ran again; the update may outlive its worker (503 then).
    assert (await hang_up).status_code in (200, 503)
    await world.wait_ended(finish, FINISH_LOSS_S)
    assert time.monotonic() - killed_at < FINISH_LOSS_S

    view = await world.wait_ended(ring, 20)
    assert outcomes(view) == [(a.id, "no_answer"), (b.id, "no_answer"), (c.id, "answered")]
    assert view["end_reason"] == "hangUpVoip"
    assert event_order_problems(view) == []
    assert_rung_once(view, [ca, cb, cc])
    for call_id, resident, client in ((talk, d, cd), (finish, e, ce)):
        view = await world.wait_ended(call_id, 10)
        assert outcomes(view) == [(resident.id, "answered")], call_id
        assert view["end_reason"] == "hangUpVoip"
        assert event_order_problems(view) == []
        names = next(iter(room_names(view).values()))
        assert names.count("endVoip") == names.count("finishVoip") == 1
        assert await world.pool.fetchval("SELECT count(*) FROM billing WHERE call_id = $1", call_id) == 1
        assert await world.pool.fetchval("SELECT count(*) FROM line_claims WHERE call_id = $1", call_id) == 0
        ended = await client.wait_for(ended_push(call_id))
        assert ended.frame["payload"]["keepTime"] == view["keep_time_s"]


def ring_windows(client: PartyClient, call_id: str) -> dict[str, float]:
    """Per room that rang ``client`` in call ``call_id``: seconds from its ``incoming_call``
    to its ``call_cancelled``/``call_ended`` at the socket (how long the resident could answer)."""
    rung = {
        m.frame["room_id"]: m.received_at
        for m in client.received
        if m.call_id == call_id and m.type == "incoming_call"
    }
    ends = {
        m.frame["room_id"]: m.received_at
        for m in client.received
        if m.call_id == call_id and m.type in ("call_cancelled", "call_ended")
    }
    return {room: ends[room] - at for room, at in rung.items() if room in ends}


async def test_worker_killed_during_initiate_and_between_targets(world: World) -> None:
    """ONE kill -9 hits four calls, each held (:class:`RowHold`) at a step of its set-up:
    I1 inside ``start_call`` (callStarted + resolving its targets), I2 inside its first room's
    ``ring`` (pre-call checks, line claim, ringing record), E1 after A's ring timeout inside
    the ``record`` of ``escalated`` (before B is rung), E2 inside B's ``ring`` (while B is
    rung). A new worker completes all four, on time, with the events of docs/events.md in
    order, and rings nobody twice for the same attempt."""
    i1a, i2a, e1a, e1b, e2a, e2b = await world.residents(6, "init")
    ci1a, ce1b = [await world.connect(p, answer_then_hang_up) for p in (i1a, e1b)]
    ci2a, ce1a, ce2a, ce2b = [await world.connect(p) for p in (i2a, e1a, e2a, e2b)]
    keys = {name: f"{name}-{uuid.uuid4().hex[:10]}" for name in ("i1", "i2", "e1", "e2")}
    async with row_hold(world.pool) as hold:
        await hold.call_start(keys["i1"])
        await hold.line(i2a)
        await hold.event(f"{keys['e1']}#2")  # callStarted is #1, the first escalated #2
        await hold.line(e2b)
        i1, i2, e1, e2 = await asyncio.gather(
            world.place(LOBBY, [i1a], ring_timeout_s=RING_S, key=keys["i1"]),
            world.place(LOBBY, [i2a], ring_timeout_s=RING_S, key=keys["i2"]),
            world.place(LOBBY, [e1a, e1b], ring_timeout_s=RING_S, key=keys["e1"]),
            world.place(LOBBY, [e2a, e2b], ring_timeout_s=RING_S, key=keys["e2"]),
        )
        # E1 and E2 wait A's ring timeout out before they reach their hold
        await hold.wait_blocked(4, RING_S + 30, "start_call, two rings and an escalated record")
        assert await world.pool.fetchval("SELECT count(*) FROM call_events WHERE call_id = $1", i1) == 0
        await world.stack.kill_worker()
        killed_at = time.monotonic()
        await hold.release()
    await world.stack.start_worker()

    # Nobody was rung by a held step before the kill; each step ran once more afterwards.
    assert [m for c in (ci1a, ci2a, ce1b, ce2b) for m in c.received] == []
    rung = await asyncio.gather(
        ci1a.wait_for(incoming(i1), timeout=FINISH_LOSS_S),
        ci2a.wait_for(incoming(i2), timeout=FINISH_LOSS_S),
        ce1b.wait_for(incoming(e1), timeout=FINISH_LOSS_S),
        ce2b.wait_for(incoming(e2), timeout=FINISH_LOSS_S),
    )
    assert max(m.received_at for m in rung) - killed_at < FINISH_LOSS_S
    views = {
        call_id: await world.wait_ended(call_id, killed_at + FINISH_LOSS_S + RING_S + 5 - time.monotonic())
        for call_id in (i1, i2, e1, e2)
    }
    assert time.monotonic() - killed_at < FINISH_LOSS_S + RING_S + 5
    expected = {
        i1: ([(i1a.id, "answered")], "hangUpVoip", [ci1a]),
        i2: ([(i2a.id, "no_answer")], "timeout", [ci2a]),
        e1: ([(e1a.id, "no_answer"), (e1b.id, "answered")], "hangUpVoip", [ce1a, ce1b]),
        e2: ([(e2a.id, "no_answer"), (e2b.id, "no_answer")], "timeout", [ce2a, ce2b]),
    }
    for call_id, (attempts, end_reason, clients) in expected.items():
        view = views[call_id]
        assert outcomes(view) == attempts, call_id
        assert view["end_reason"] == end_reason, call_id
        assert event_order_problems(view) == [], call_id
        assert_rung_once(view, clients)
        names = [e["name"] for e in view["events"] if e["room_id"] is None]
        assert names == ["callStarted", *(["escalated"] * (len(attempts) - 1)), "callEnded"], call_id
        assert await world.pool.fetchval("SELECT count(*) FROM line_claims WHERE call_id = $1", call_id) == 0
    # A rooms that were not held rang their whole ring timeout
    for client, call_id in ((ce1a, e1), (ce2a, e2)):
        assert all(w >= RING_S * 0.9 for w in ring_windows(client, call_id).values()), call_id
    # the held B of E2 is rung only after the escalation from A
    e2_events = [(e["name"], e["room_id"]) for e in views[e2]["events"]]
    assert e2_events.index(("escalated", None)) < e2_events.index(("ringing", f"{e2}.2"))
    assert await world.pool.fetchval("SELECT count(*) FROM line_claims WHERE call_id = 'fault-hold'") == 0


async def test_ring_window_counts_from_the_ring(world: World) -> None:
    """A listener gets its whole ring timeout to answer, counted from the ring (the
    ``incoming_call`` push), even when the ``ring`` activity itself was slow (here: held
    ``RING_S + 1`` s in its line claim, as after a worker kill or in a queue)."""
    (a,) = await world.residents(1, "window")
    ca = await world.connect(a)
    async with row_hold(world.pool) as hold:
        await hold.line(a)
        call_id = await world.place(LOBBY, [a], ring_timeout_s=RING_S)
        await hold.wait_blocked(1, 10, "the ring")
        await asyncio.sleep(RING_S + 1)
    view = await world.wait_ended(call_id, RING_S + 10)
    assert outcomes(view) == [(a.id, "no_answer")]
    windows = ring_windows(ca, call_id)
    assert len(windows) == 1 and min(windows.values()) >= RING_S * 0.9, windows


async def test_reject_as_soon_as_rung(world: World) -> None:
    """A listener who declines the moment ``incoming_call`` arrives gets 200 and its room
    ends with ``rejectVoip`` at once (section 4), not after the ring timeout. Four calls at
    once, so that the outcome does not hang on one race."""
    residents = await world.residents(4, "reject")
    statuses: list[int] = []

    async def reject_at_once(client: PartyClient, msg: Received) -> None:
        if msg.type == "incoming_call":
            statuses.append((await client.action(str(msg.call_id), "reject")).status_code)

    for p in residents:
        await world.connect(p, reject_at_once)
    call_ids = await asyncio.gather(*(world.place(LOBBY, [p], ring_timeout_s=RING_S + 3) for p in residents))
    views = await asyncio.gather(*(world.wait_ended(c, RING_S + 15) for c in call_ids))
    # the room ends in the workflow task that accepts the reject: the call may be over
    # before the 200 reaches the resident's handler
    await poll(lambda: asyncio.sleep(0, statuses), lambda s: len(s) == 4, 10, "4 rejects answered")
    assert statuses == [200] * 4, statuses
    for view in views:
        assert [o for _, o in outcomes(view)] == ["rejected"]
        assert event_order_problems(view) == []


PENDING = "SELECT id FROM outbox WHERE call_id = $1 AND recipient = $2 AND acked_at IS NULL"


async def test_api_killed_with_pushes_pending_every_push_arrives_once(world: World) -> None:
    a, b = await world.residents(2, "api")
    ca = await world.connect(a)  # de-duplicating client
    rb = await world.connect_raw(b)  # records every frame as sent
    rdev = await world.connect_raw(LOBBY)
    call_id = await world.place(LOBBY, [a, b], strategy="simultaneous", ring_timeout_s=RING_S)
    await asyncio.gather(
        ca.wait_for(incoming(call_id)), poll(lambda: asyncio.sleep(0, rb.ids(call_id)), bool, 5, "b rung")
    )
    await world.stack.kill_api()
    # while the API is down the ring times out: call_cancelled/call_ended wait in the outbox
    await world.wait_ended_in_db(call_id, RING_S + 15)
    pending = {
        p.key(): {r["id"] for r in await world.pool.fetch(PENDING, call_id, p.key())} for p in (a, b, LOBBY)
    }
    assert all(pending.values()), pending
    await world.stack.start_api()

    async def delivered() -> bool:
        unacked = [await world.pool.fetch(PENDING, call_id, p.key()) for p in (a, b, LOBBY)]
        return not any(unacked)

    await poll(delivered, bool, 10, "every push delivered and acked after the restart")
    for raw, party in ((rb, b), (rdev, LOBBY)):
        expected = await world.outbox_ids(party, call_id)
        assert raw.connects >= 2
        # the new connection got exactly what was pending, each once ...
        after = raw.ids(call_id, connection=raw.connects)
        assert sorted(after) == sorted(pending[party.key()]), party
        # ... and nothing was lost or sent twice on any one connection
        assert set(raw.ids(call_id)) == expected, party
        for n in range(1, raw.connects + 1):
            ids = raw.ids(call_id, connection=n)
            assert len(ids) == len(set(ids)), (party, n, ids)
    got = [m.frame["id"] for m in ca.received if m.call_id == call_id]
    assert len(got) == len(set(got)) and set(got) == await world.outbox_ids(a, call_id)
    assert sorted(m.type for m in ca.received if m.call_id == call_id) == [
        "call_cancelled",
        "incoming_call",
        "missed_call",  # issue 10: nobody answered, written with callEnded
    ]


async def test_postgres_stopped_while_ringing_call_completes_no_event_lost(world: World) -> None:
    a, b = await world.residents(2, "pg")

    async def answer_then_hang_up(client: PartyClient, msg: Received) -> None:
        answered = (
            msg.type == "incoming_call" and (await client.action(str(msg.call_id), "answer")).is_success
        )
        if answered:
            await asyncio.sleep(0.3)
            await client.action(str(msg.call_id), "hang-up")

    ca = await world.connect(a)
    cb = await world.connect(b, answer_then_hang_up)
    call_id = await world.place(LOBBY, [a, b], ring_timeout_s=RING_S)
    await ca.wait_for(incoming(call_id))
    t0 = time.monotonic()
    await asyncio.to_thread(world.stack.postgres.stop)
    await asyncio.sleep(RING_S + 1)  # the ring timer fires while the database is down
    await asyncio.to_thread(world.stack.postgres.start)
    await cb.wait_for(incoming(call_id), timeout=30)
    view = await world.wait_ended(call_id, 30)
    assert time.monotonic() - t0 < 45
    assert outcomes(view) == [(a.id, "no_answer"), (b.id, "answered")]
    assert event_order_problems(view) == []  # ids unique, seq contiguous per room
    rows = await world.pool.fetch("SELECT id, room_id, seq FROM call_events WHERE call_id = $1", call_id)
    assert len(rows) == len(view["events"]) == len({r["id"] for r in rows})
    assert_rung_once(view, [ca, cb])


async def test_offline_resident_counts_as_no_answer(world: World) -> None:
    offline, online = await world.residents(2, "off")
    co = await world.connect(online, None)
    call_id = await world.place(LOBBY, [offline, online], ring_timeout_s=RING_S)
    t0 = time.monotonic()
    msg = await co.wait_for(incoming(call_id), timeout=RING_S + 10)
    assert msg.received_at - t0 >= RING_S * 0.9
    assert (await co.action(call_id, "answer")).status_code == 200
    assert (await co.action(call_id, "hang-up")).status_code == 200
    view = await world.wait_ended(call_id, 10)
    assert outcomes(view) == [(offline.id, "no_answer"), (online.id, "answered")]
    assert event_order_problems(view) == []
    # the offline resident's pushes wait in the outbox, undelivered
    rows = await world.pool.fetch(
        "SELECT type, acked_at FROM outbox WHERE call_id = $1 AND recipient = $2 ORDER BY seq",
        call_id,
        offline.key(),
    )
    assert [(r["type"], r["acked_at"]) for r in rows] == [("incoming_call", None), ("call_cancelled", None)]


async def test_two_answers_in_the_same_millisecond_one_talks(world: World) -> None:
    dan, erin = user("dan"), user("erin")
    cd, ce = await world.connect(dan), await world.connect(erin)
    r = await world.backend.place_call(
        {
            "caller": LOBBY.model_dump(mode="json"),
            "unit_id": "102",
            "room_type": "voice",
            "policy": {"strategy": "simultaneous", "ring_timeout_s": 3.0},
        },
        f"same-ms-{time.time_ns()}",
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["call_id"]
    await asyncio.gather(cd.wait_for(incoming(call_id)), ce.wait_for(incoming(call_id)))
    answers = await asyncio.gather(cd.action(call_id, "answer"), ce.action(call_id, "answer"))
    assert sorted(a.status_code for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status_code == 409).json()
    assert loser["type"] == "/problems/answered-by-another"
    assert loser["errCode"] == 1005
    winner = cd if answers[0].status_code == 200 else ce
    assert (await winner.action(call_id, "hang-up")).status_code == 200
    view = await world.wait_ended(call_id, 10)
    assert view["answered_by"] == winner.party.model_dump(mode="json")
    assert sorted(str(o) for _, o in outcomes(view)) == ["answered", "cancelled"]
    assert event_order_problems(view) == []
    assert sum(e["name"] == "calling" for e in view["events"]) == 1

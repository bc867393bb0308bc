"""BuildingCallWorkflow with the availability rules (issue 10 items 1-2) on the time-skipping
server: the fake ``ring`` (tests/fakes.py) evaluates the real rules (ringflow/availability.py) at
``RingInput.at`` = the workflow's time, so each test jumps the server's clock to the instant it
needs (DST nights of Europe/Berlin and America/New_York, a Monday night) and checks who is rung,
who is skipped and why, and that the rules are evaluated at each ring's own instant."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ringflow.availability import PersonAvailability
from ringflow.contracts.availability import QuietHours, RingThroughDnd
from ringflow.contracts.calls import AttemptOutcome, EscalationInput, EscalationResult
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.policies import EscalationPolicy
from tests.fakes import LOBBY, FakeDirectory, FakeUnit, running, user
from workflows.building_call import INITIATE_FAILED
from workflows.building_call import BuildingCallWorkflow as Workflow

CONCIERGE = user("concierge")


def night(days: list[str], start: str = "22:00", end: str = "07:00", zone: str | None = None) -> QuietHours:
    return QuietHours.model_validate({"days": days, "start": start, "end": end, "time_zone": zone})


def next_dst_sunday(zone: str, after: datetime, forward: bool) -> date:
    """The first day after ``after`` on which ``zone``'s clocks go forward (``forward``) or back."""
    tz = ZoneInfo(zone)
    day = after.astimezone(tz).date() + timedelta(days=1)
    for _ in range(400):
        before = datetime.combine(day, time(0), tz).utcoffset()
        later = datetime.combine(day, time(12), tz).utcoffset()
        assert before is not None and later is not None
        if (later > before) if forward else (later < before):
            return day
        day += timedelta(days=1)
    raise AssertionError(f"no DST change in {zone}")


async def jump(env: WorkflowEnvironment, to: datetime) -> None:
    """Skip the test server's clock to ``to`` (aware)."""
    assert env.supports_time_skipping, "needs the time-skipping test server to reach a given night"
    now = await env.get_current_time()
    assert to > now, (to, now)
    await env.sleep((to - now).total_seconds())


async def call(env: WorkflowEnvironment, tq: str, **kw: object) -> WorkflowHandle:
    inp = EscalationInput(call_id=f"call-{uuid.uuid4().hex[:8]}", caller=LOBBY, unit_id="101", **kw)  # type: ignore[arg-type]
    return await env.client.start_workflow(Workflow.run, inp, id=inp.call_id, task_queue=tq)


def skips(res: EscalationResult) -> list[tuple[str, ErrCode | None, str | None]]:
    return [
        (a.listener.id, a.err_code, a.reason) for a in res.attempts if a.outcome == AttemptOutcome.SKIPPED
    ]


def rung(res: EscalationResult) -> list[str]:
    return [a.listener.id for a in res.attempts if a.outcome != AttemptOutcome.SKIPPED]


async def test_unit_quiet_hours_on_the_spring_forward_night(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Europe/Berlin, Sat 22:00-07:00 for the unit: before 22:00 alice rings; at 06:50 local
    (summer time already) every resident is skipped (dnd, the unit's rule) and the fallback
    (not a resident) rings; at 07:00:30 local alice rings again: the night was 8 real hours,
    which a fixed winter-time offset would get wrong by an hour."""
    fake = FakeDirectory()
    fake.time_zone = "Europe/Berlin"
    # the rule names its zone (validated in the workflow's sandbox too, as ResolvedPlan.policy)
    rule = night(["sat"], zone="Europe/Berlin")
    policy = EscalationPolicy(ring_timeout_s=30, quiet_hours=[rule], fallback_user_id="concierge")
    fake.units["101"] = FakeUnit("Unit 101", ["alice", "bob"], policy)
    berlin = ZoneInfo("Europe/Berlin")
    sunday = next_dst_sunday("Europe/Berlin", await ts_env.get_current_time(), forward=True)
    saturday = sunday - timedelta(days=1)
    async with running(ts_env, task_queue, fake):
        await jump(ts_env, datetime.combine(saturday, time(21, 58), berlin))
        res = await (await call(ts_env, task_queue)).result()
        assert rung(res)[0] == "alice" and skips(res) == []

        await jump(ts_env, datetime.combine(sunday, time(6, 50), berlin))
        res = await (await call(ts_env, task_queue)).result()
        end = datetime.combine(sunday, time(7), berlin).astimezone(UTC)
        reason = f"dnd: unit '101' quiet hours Sat 22:00-07:00 Europe/Berlin (until {end.isoformat()})"
        assert skips(res) == [
            ("alice", ErrCode.DO_NOT_DISTURB, reason),
            ("bob", ErrCode.DO_NOT_DISTURB, reason),
        ]
        assert rung(res) == ["concierge"] and res.end_reason == "timeout"
        start = datetime.combine(saturday, time(22), berlin).astimezone(UTC)
        assert end - start == timedelta(hours=8)

        await jump(ts_env, datetime.combine(sunday, time(7, 0, 30), berlin))
        h = await call(ts_env, task_queue)
        res = await h.result()
        assert rung(res)[:2] == ["alice", "bob"] and skips(res) == []
    # the rules ran at the workflow's instant of each ring
    at = fake.ring_instants[f"{h.id}.1"]
    assert at is not None and timedelta(0) <= at - datetime.combine(
        sunday, time(7, 0, 30), berlin
    ) < timedelta(seconds=5)


async def test_resident_quiet_hours_on_the_fall_back_night_at_each_rings_instant(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """America/New_York (the rule's own zone; the site is UTC), bob's own nightly 22:00-07:00:
    on the fall-back night 06:30 local is still quiet (10 real hours; summer time's offset would
    have ended it at 06:00 winter time); a call that starts at 06:59:30 reaches bob after
    alice's 60 s ring, at 07:00:30: he is rung, as the rule is evaluated at his ring's instant."""
    fake = FakeDirectory()
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    fake.people["bob"] = PersonAvailability("bob", quiet_hours=(night(every_day, zone="America/New_York"),))
    fake.units["101"] = FakeUnit("Unit 101", ["alice", "bob", "carol"], EscalationPolicy(ring_timeout_s=60))
    ny = ZoneInfo("America/New_York")
    sunday = next_dst_sunday("America/New_York", await ts_env.get_current_time(), forward=False)
    async with running(ts_env, task_queue, fake):
        await jump(ts_env, datetime.combine(sunday, time(6, 30), ny))
        res = await (await call(ts_env, task_queue)).result()
        end = datetime.combine(sunday, time(7), ny).astimezone(UTC)
        assert skips(res) == [
            (
                "bob",
                ErrCode.DO_NOT_DISTURB,
                f"dnd: user 'bob' quiet hours Sat 22:00-07:00 America/New_York (until {end.isoformat()})",
            )
        ]
        assert rung(res) == ["alice", "carol"]
        start = datetime.combine(sunday - timedelta(days=1), time(22), ny).astimezone(UTC)
        assert end - start == timedelta(hours=10)

        await jump(ts_env, datetime.combine(sunday, time(6, 59, 30), ny))
        res = await (await call(ts_env, task_queue)).result()
        assert skips(res) == [] and rung(res) == ["alice", "bob", "carol"]


async def test_quiet_hours_span_midnight_on_their_days_only(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Monday 22:00 to Tuesday 07:00 (Europe/Berlin) for the unit: Monday 21:59 rings, Tuesday
    00:30 is skipped (the night that began on Monday), Tuesday 23:00 rings (no rule on Tuesday);
    with nobody left to ring the call ends ``initiateFailed`` with errCode 1003 and the reason."""
    fake = FakeDirectory()
    fake.time_zone = "Europe/Berlin"
    fake.units["101"] = FakeUnit(
        "Unit 101", ["alice"], EscalationPolicy(ring_timeout_s=10, quiet_hours=[night(["mon"])])
    )
    berlin = ZoneInfo("Europe/Berlin")
    today = (await ts_env.get_current_time()).astimezone(berlin).date()
    monday = today + timedelta(days=7 - today.weekday())
    async with running(ts_env, task_queue, fake):
        await jump(ts_env, datetime.combine(monday, time(21, 59), berlin))
        res = await (await call(ts_env, task_queue)).result()
        assert rung(res) == ["alice"]

        await jump(ts_env, datetime.combine(monday + timedelta(days=1), time(0, 30), berlin))
        h = await call(ts_env, task_queue)
        res = await h.result()
        assert rung(res) == [] and (res.end_reason, res.err_code) == (INITIATE_FAILED, ErrCode.DO_NOT_DISTURB)
        ended = fake.events(call_id=h.id)[-1]
        assert ended.name.value == "callEnded" and ended.err_code == ErrCode.DO_NOT_DISTURB
        assert ended.reason is not None and ended.reason.startswith(
            "dnd: unit '101' quiet hours Mon 22:00-07:00"
        )
        skipped = fake.events(f"{h.id}.1")
        assert [e.name.value for e in skipped] == ["targetSkipped"] and skipped[0].reason == ended.reason

        await jump(ts_env, datetime.combine(monday + timedelta(days=1), time(23), berlin))
        res = await (await call(ts_env, task_queue)).result()
        assert rung(res) == ["alice"]


async def test_all_in_dnd_fallback_and_ring_through(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    """Alice switched do-not-disturb on, the manager set bob's: the unit goes to its fallback;
    the concierge desk's group rings through both; bob away is never rung through (1017)."""
    fake = FakeDirectory()
    now = await ts_env.get_current_time()
    fake.people["alice"] = PersonAvailability("alice", dnd=True, dnd_until=now + timedelta(days=1))
    fake.people["bob"] = PersonAvailability("bob", manager_dnd=True)
    fake.people["concierge"] = PersonAvailability("concierge", manager_dnd=True)
    desk = RingThroughDnd(groups=["concierge-desk"])
    policy = EscalationPolicy(ring_timeout_s=5, fallback_user_id="concierge", ring_through_dnd=desk)
    fake.units["101"] = FakeUnit("Unit 101", ["alice", "bob"], policy)
    async with running(ts_env, task_queue, fake):
        res = await (await call(ts_env, task_queue)).result()
        until = (now + timedelta(days=1)).isoformat()
        assert skips(res) == [
            ("alice", ErrCode.DO_NOT_DISTURB, f"dnd: user 'alice' switched do-not-disturb on until {until}"),
            (
                "bob",
                ErrCode.DO_NOT_DISTURB,
                "dnd: user 'bob' is on do-not-disturb (set by the property manager)",
            ),
            (
                "concierge",
                ErrCode.DO_NOT_DISTURB,
                "dnd: user 'concierge' is on do-not-disturb (set by the property manager)",
            ),
        ]
        assert (res.end_reason, res.err_code) == (INITIATE_FAILED, ErrCode.DO_NOT_DISTURB)

        del fake.people["concierge"]
        res = await (await call(ts_env, task_queue)).result()
        assert [s[0] for s in skips(res)] == ["alice", "bob"] and rung(res) == ["concierge"]

        fake.device_groups[LOBBY.id] = "concierge-desk"  # the lobby door joins the desk's group
        fake.people["bob"] = PersonAvailability("bob", manager_dnd=True, away=True)
        res = await (await call(ts_env, task_queue)).result()
        assert rung(res) == ["alice", "concierge"]
        assert skips(res) == [("bob", ErrCode.LISTENER_AWAY, "away: user 'bob' is away")]


async def test_manual_dnd_and_away_expire_at_the_rings_instant(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Alice away for 90 s, bob in do-not-disturb for 30 s, two rounds of 60 s rings: round 1
    skips alice (away, 1017) and bob (dnd, 1003) and rings carol; round 2, 60 s later, still
    skips alice (away until 90 s) but rings bob (his switch expired at 30 s)."""
    fake = FakeDirectory()
    now = await ts_env.get_current_time()
    fake.people["alice"] = PersonAvailability("alice", away=True, away_until=now + timedelta(seconds=90))
    fake.people["bob"] = PersonAvailability("bob", dnd=True, dnd_until=now + timedelta(seconds=30))
    fake.units["101"] = FakeUnit(
        "Unit 101", ["alice", "bob", "carol"], EscalationPolicy(ring_timeout_s=60, rounds=2)
    )
    async with running(ts_env, task_queue, fake):
        h = await call(ts_env, task_queue)
        res = await h.result()
    outcomes = [(a.listener.id, a.round, a.outcome, a.err_code) for a in res.attempts]
    assert outcomes == [
        ("alice", 1, AttemptOutcome.SKIPPED, ErrCode.LISTENER_AWAY),
        ("bob", 1, AttemptOutcome.SKIPPED, ErrCode.DO_NOT_DISTURB),
        ("carol", 1, AttemptOutcome.NO_ANSWER, None),
        ("alice", 2, AttemptOutcome.SKIPPED, ErrCode.LISTENER_AWAY),
        ("bob", 2, AttemptOutcome.NO_ANSWER, None),
        ("carol", 2, AttemptOutcome.NO_ANSWER, None),
    ]
    assert res.end_reason == "timeout"
    instants = [fake.ring_instants[f"{h.id}.{i}"] for i in (1, 5)]
    assert all(at is not None for at in instants)
    assert instants[1] - instants[0] >= timedelta(seconds=60)  # type: ignore[operator]

"""ringflow/availability.py: the pure availability rules (issue 10 items 1-2) at given instants:
quiet hours across midnight, on their days only, on DST change nights (Europe/Berlin and
America/New_York, spring forward and fall back, boundaries in the skipped and the repeated
hour), manual do-not-disturb and away with expiry, ring-through-DND, presence."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ringflow import availability as rules
from ringflow.availability import PersonAvailability, RingContext
from ringflow.contracts.availability import PresenceIn, PresenceStatus, QuietHours, RingThroughDnd
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.policies import EscalationPolicy

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def night(days: list[str], start: str = "22:00", end: str = "07:00", zone: str | None = None) -> QuietHours:
    return QuietHours.model_validate({"days": days, "start": start, "end": end, "time_zone": zone})


def test_boundaries_in_the_skipped_and_the_repeated_hour() -> None:
    # Berlin 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC; 02:30 never shows: the transition
    assert rules.local_instant(date(2026, 3, 29), time(2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert rules.local_instant(date(2026, 3, 29), time(3, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert rules.local_instant(date(2026, 3, 29), time(1, 59), BERLIN) == utc(2026, 3, 29, 0, 59)
    # Berlin 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:30 shows twice: the first
    assert rules.local_instant(date(2026, 10, 25), time(2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    # New York 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST
    assert rules.local_instant(date(2026, 3, 8), time(2, 15), NEW_YORK) == utc(2026, 3, 8, 7, 0)
    assert rules.local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)


@pytest.mark.parametrize(
    ("zone", "saturday", "start_utc", "end_utc", "hours"),
    [
        # spring forward: 22:00 Sat (winter time) to 07:00 Sun (summer time) is 8 real hours
        ("Europe/Berlin", date(2026, 3, 28), utc(2026, 3, 28, 21), utc(2026, 3, 29, 5), 8),
        ("America/New_York", date(2026, 3, 7), utc(2026, 3, 8, 3), utc(2026, 3, 8, 11), 8),
        # fall back: 22:00 Sat (summer time) to 07:00 Sun (winter time) is 10 real hours
        ("Europe/Berlin", date(2026, 10, 24), utc(2026, 10, 24, 20), utc(2026, 10, 25, 6), 10),
        ("America/New_York", date(2026, 10, 31), utc(2026, 11, 1, 2), utc(2026, 11, 1, 12), 10),
    ],
)
def test_a_night_rule_on_dst_nights_ends_at_seven_on_the_clock(
    zone: str, saturday: date, start_utc: datetime, end_utc: datetime, hours: int
) -> None:
    rule = night(["sat"])
    assert rule.model_dump(mode="json")["start"] == "22:00"
    window = rules.quiet_window(rule, start_utc + timedelta(hours=1), zone)
    assert window is not None
    assert (window.start, window.end) == (start_utc, end_utc)
    assert window.end - window.start == timedelta(hours=hours)
    assert window.label == f"Sat 22:00-07:00 {zone}"
    assert rules.quiet_window(rule, start_utc - timedelta(seconds=1), zone) is None
    assert rules.quiet_window(rule, end_utc - timedelta(seconds=1), zone) == window
    assert rules.quiet_window(rule, end_utc, zone) is None  # 07:00 local: calls ring again
    local_end = end_utc.astimezone(ZoneInfo(zone))
    assert (local_end.date(), local_end.time()) == (saturday + timedelta(days=1), time(7, 0))


def test_quiet_hours_end_once_in_the_repeated_hour() -> None:
    # 01:00-02:30 on Berlin's fall-back night ends at the first 02:30 (CEST) and stays over
    # through the repeated 02:00-02:59 (CET): no quiet, loud, quiet again
    rule = night(["sun"], "01:00", "02:30")
    end = utc(2026, 10, 25, 0, 30)
    assert rules.quiet_window(rule, end - timedelta(minutes=1), "Europe/Berlin") is not None
    for minutes in range(0, 120, 5):
        assert rules.quiet_window(rule, end + timedelta(minutes=minutes), "Europe/Berlin") is None


def test_midnight_span_and_days() -> None:
    rule = night(["mon"])  # Monday 22:00 to Tuesday 07:00, Berlin winter time (UTC+1)
    monday = date(2026, 12, 7)
    assert monday.weekday() == 0
    at = datetime.combine(monday, time(23, 30), BERLIN)
    assert rules.quiet_window(rule, at, "Europe/Berlin") is not None
    assert rules.quiet_window(rule, at + timedelta(hours=2), "Europe/Berlin") is not None  # Tue 01:30
    assert rules.quiet_window(rule, at - timedelta(hours=2), "Europe/Berlin") is None  # Mon 21:30
    assert rules.quiet_window(rule, at + timedelta(days=1), "Europe/Berlin") is None  # Tue 23:30
    assert rules.quiet_window(rule, at - timedelta(days=1), "Europe/Berlin") is None  # Sun 23:30
    # the same instant in another zone is another local time: the rule's own zone wins
    in_ny = night(["mon"], zone="America/New_York")
    assert rules.quiet_window(in_ny, at, "Europe/Berlin") is None  # 17:30 in New York
    # a daytime rule (end after start) stays within its day
    day = night(["tue"], "12:00", "14:00")
    assert rules.quiet_window(
        day, datetime.combine(monday + timedelta(days=1), time(13), BERLIN), "Europe/Berlin"
    )
    assert not rules.quiet_window(day, datetime.combine(monday, time(13), BERLIN), "Europe/Berlin")


def test_rule_validation() -> None:
    for bad in (
        {"start": "22:00", "end": "22:00"},
        {"start": "22:00:30", "end": "07:00"},
        {"start": "22:00", "end": "07:00", "days": ["mon", "mon"]},
        {"start": "22:00", "end": "07:00", "days": ["someday"]},
        {"start": "22:00", "end": "07:00", "time_zone": "Mars/Olympus"},
        {"start": "22:00", "end": "07:00", "days": []},
    ):
        with pytest.raises(ValidationError):
            QuietHours.model_validate(bad)
    with pytest.raises(ValidationError):
        PresenceIn(status=PresenceStatus.IN_CALL)
    with pytest.raises(ValidationError):
        PresenceIn(status=PresenceStatus.AVAILABLE, until=utc(2030, 1, 1))


def _ctx(
    policy: EscalationPolicy | None = None, group: str | None = None, resident: bool = True
) -> RingContext:
    return RingContext.of(
        LOBBY,
        group,
        "bob",
        "Europe/Berlin",
        unit_id="101" if policy else None,
        residents=["bob"] if resident else ["alice"],
        policy=policy,
    )


def test_check_order_reasons_and_ring_through() -> None:
    at = utc(2026, 12, 7, 23)  # Monday 00:00 Tuesday in Berlin
    unit_quiet = EscalationPolicy(quiet_hours=[night(["mon"])])
    free = PersonAvailability("bob")
    assert rules.check(free, _ctx(), at) is None
    skip = rules.check(free, _ctx(unit_quiet), at)
    assert skip is not None and skip.err_code == ErrCode.DO_NOT_DISTURB
    assert skip.reason == (
        "dnd: unit '101' quiet hours Mon 22:00-07:00 Europe/Berlin (until 2026-12-08T06:00:00+00:00)"
    )
    # the unit's quiet hours are its residents': the fallback (not a resident) rings
    assert rules.check(free, _ctx(unit_quiet, resident=False), at) is None
    own = PersonAvailability("bob", quiet_hours=(night(["mon"], "23:30", "06:00"),))
    skip = rules.check(own, _ctx(), at)
    assert skip is not None and skip.reason.startswith(
        "dnd: user 'bob' quiet hours Mon 23:30-06:00 Europe/Berlin"
    )
    manual = PersonAvailability("bob", dnd=True, dnd_until=at + timedelta(minutes=5))
    skip = rules.check(manual, _ctx(), at)
    assert (
        skip is not None
        and skip.reason == "dnd: user 'bob' switched do-not-disturb on until 2026-12-07T23:05:00+00:00"
    )
    assert rules.check(manual, _ctx(), at + timedelta(minutes=5)) is None  # expired at its instant
    manager = PersonAvailability("bob", manager_dnd=True)
    assert rules.check(manager, _ctx(), at + timedelta(days=300)) is not None  # no expiry
    # ring through: the concierge desk's group or the device itself; never through away
    desk = EscalationPolicy(quiet_hours=[night(["mon"])], ring_through_dnd=RingThroughDnd(groups=["desk"]))
    assert rules.check(manager, _ctx(desk, group="desk"), at) is None
    assert rules.check(manager, _ctx(desk, group="lobby"), at) is not None
    by_device = EscalationPolicy(ring_through_dnd=RingThroughDnd(devices=["LOBBY-1"]))
    assert rules.check(manual, _ctx(by_device), at) is None
    away = PersonAvailability("bob", manager_dnd=True, away=True, away_until=at + timedelta(hours=1))
    skip = rules.check(away, _ctx(desk, group="desk"), at)
    assert skip is not None and skip.err_code == ErrCode.LISTENER_AWAY
    assert skip.reason == "away: user 'bob' is away until 2026-12-08T00:00:00+00:00"
    assert rules.check(away, _ctx(desk, group="desk"), at + timedelta(hours=1)) is None


def test_presence() -> None:
    at = utc(2026, 12, 7, 12)
    since = at - timedelta(hours=1)
    away = PersonAvailability("bob", away=True, away_since=since, away_until=at + timedelta(hours=1))
    p = rules.presence(away, at)
    assert (p.status, p.away, p.away_since, p.in_call) == (PresenceStatus.AWAY, True, since, False)
    assert rules.presence(away, at + timedelta(hours=1)).status is PresenceStatus.AVAILABLE  # expired
    busy = rules.presence(away, at, call_id="press-1")
    assert (busy.status, busy.away, busy.call_id) == (PresenceStatus.IN_CALL, True, "press-1")
    assert rules.presence(PersonAvailability("bob"), at).status is PresenceStatus.AVAILABLE

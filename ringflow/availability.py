"""The availability rules (issue 10 items 1-2): may this person be rung at this instant?

Pure functions over plain data, evaluated at a given instant: no I/O, no clock. The ring
(``activities/directory.py`` ``precall_checks``) evaluates them at the ring's instant (the
workflow's ``workflow.now()`` passed in ``RingInput.at``), the fake activities of the workflow
tests (``tests/fakes.py``) and ``ringflow simulate`` at simulated time, so the three agree.
``store/availability.py`` only loads the data (:class:`PersonAvailability`,
:class:`RingContext`).

Order of the checks (first that applies wins; docs/events.md, docs/errcodes.md):

1. ``away`` (set and not expired) -> errCode 1017 ``LISTENER_AWAY``, reason ``away: ...``
   (never rung through: the person is not there);
2. do-not-disturb, unless the unit's ``ring_through_dnd`` names the caller -> errCode 1003
   ``DO_NOT_DISTURB``, reason ``dnd: ...`` saying which rule: the property manager's switch, the
   person's manual switch (until X), the person's quiet hours, the unit's quiet hours.

A busy line (presence ``in_call``) is the line claim's business (errCode 1002, ``busy``).

Quiet hours and daylight saving time: see :class:`~ringflow.contracts.availability.QuietHours`;
:func:`local_instant` is the rule ("the first instant the local clock shows that time or later").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ringflow.contracts.availability import Presence, PresenceStatus, QuietHours, RingThroughDnd
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.policies import EscalationPolicy

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class PersonAvailability:
    """What is stored about one person (a user of a tenant), as loaded for one evaluation.

    ``manager_dnd``: the property manager's ``User.do_not_disturb``; ``dnd``/``dnd_until``: the
    person's own manual switch and its expiry (None: until switched off); ``away``/
    ``away_since``/``away_until``: likewise for away; ``quiet_hours``: the person's weekly rules.
    Times are aware datetimes.
    """

    user_id: str
    manager_dnd: bool = False
    dnd: bool = False
    dnd_since: datetime | None = None
    dnd_until: datetime | None = None
    away: bool = False
    away_since: datetime | None = None
    away_until: datetime | None = None
    quiet_hours: tuple[QuietHours, ...] = ()


@dataclass(frozen=True, slots=True)
class RingContext:
    """The call's side of one evaluation: who calls (``caller``, the caller device's group
    ``caller_group``), the unit called (``unit_id``; None for explicit callees) with its quiet
    hours (``unit_quiet_hours``: applied only when ``listener_is_resident``) and its
    ``ring_through_dnd``, and ``time_zone``: the IANA zone of the unit's site (the caller
    device's site for explicit callees) that rules without their own ``time_zone`` use."""

    caller: Party
    caller_group: str | None = None
    unit_id: str | None = None
    unit_quiet_hours: tuple[QuietHours, ...] = ()
    listener_is_resident: bool = False
    ring_through_dnd: RingThroughDnd | None = None
    time_zone: str = "UTC"

    @classmethod
    def of(
        cls,
        caller: Party,
        caller_group: str | None,
        listener_id: str,
        time_zone: str,
        unit_id: str | None = None,
        residents: list[str] | None = None,
        policy: EscalationPolicy | None = None,
    ) -> RingContext:
        """The context of a ring of ``listener_id`` for a call of ``caller`` (its device's group
        ``caller_group``) to unit ``unit_id`` with ``residents`` and its stored ``policy`` (all
        None: explicit callees, no unit), in site zone ``time_zone``."""
        return cls(
            caller=caller,
            caller_group=caller_group,
            unit_id=unit_id if policy is not None else None,
            unit_quiet_hours=tuple(policy.quiet_hours) if policy is not None else (),
            listener_is_resident=policy is not None and listener_id in (residents or []),
            ring_through_dnd=policy.ring_through_dnd if policy is not None else None,
            time_zone=time_zone,
        )


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a person is not rung: ``err_code`` (1003 or 1017) and the ``reason`` sentence for the
    attempt and the ``targetSkipped`` event (starts with ``dnd:`` or ``away:``)."""

    err_code: ErrCode
    reason: str


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence of a quiet-hours rule: ``[start, end)`` as aware UTC instants, and the
    rule's description (``Mon 22:00-07:00 Europe/Berlin``)."""

    start: datetime
    end: datetime
    label: str = field(default="")


def _expired(until: datetime | None, at: datetime) -> bool:
    return until is not None and until <= at


def dnd_active(person: PersonAvailability, at: datetime) -> bool:
    """The person's own manual do-not-disturb is on at ``at`` (on and not expired)."""
    return person.dnd and not _expired(person.dnd_until, at)


def away_active(person: PersonAvailability, at: datetime) -> bool:
    """The person's away is set at ``at`` (set and not expired)."""
    return person.away and not _expired(person.away_until, at)


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant (aware, UTC) at which the clock of ``tz`` shows ``wall`` on ``day``, or
    later: the instant of a quiet-hours boundary.

    - a wall time that exists once: that instant;
    - one in the repeated hour of a fall-back night: its first occurrence (fold 0, the earlier
      offset);
    - one in the skipped hour of a spring-forward night (it never shows): the transition, when
      the clock jumps past it (02:30 Europe/Berlin on 2026-03-29 -> 03:00 CEST = 01:00 UTC).
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # in the gap: fold=1 maps to an instant before the transition (its wall time is before
    # ``naive``), fold=0 to one after it; the transition (at a whole second) is the first
    # instant whose wall time is at or past ``naive``
    lo = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def describe(rule: QuietHours, day: int | None, zone: str) -> str:
    """``Mon 22:00-07:00 Europe/Berlin``: the rule on day ``day`` (0 = Monday; None: its days)."""
    days = _DAY_NAMES[day] if day is not None else ",".join(_DAY_NAMES[d.number] for d in rule.days)
    return f"{days} {rule.start:%H:%M}-{rule.end:%H:%M} {zone}"


def quiet_window(rule: QuietHours, at: datetime, default_zone: str) -> Window | None:
    """The occurrence of ``rule`` that contains ``at`` (aware), or None. The rule's zone is its
    ``time_zone``, else ``default_zone`` (the site's). An occurrence starts on one of the
    rule's days at ``start`` and ends at ``end`` the same day, or the next day when ``end`` is at
    or before ``start``; both boundaries per :func:`local_instant`."""
    zone = rule.time_zone or default_zone
    tz = ZoneInfo(zone)
    today = at.astimezone(tz).date()
    days = {d.number for d in rule.days}
    overnight = rule.end <= rule.start
    # an occurrence lasts less than a day of wall-clock time: it started today or yesterday
    for day in (today - timedelta(days=1), today):
        if day.weekday() not in days:
            continue
        start = local_instant(day, rule.start, tz)
        end = local_instant(day + timedelta(days=1) if overnight else day, rule.end, tz)
        if start <= at < end:
            return Window(start, end, describe(rule, day.weekday(), zone))
    return None


def first_quiet_window(
    rules: tuple[QuietHours, ...] | list[QuietHours], at: datetime, zone: str
) -> Window | None:
    """The first of ``rules`` (in order) whose occurrence contains ``at``, or None."""
    for rule in rules:
        window = quiet_window(rule, at, zone)
        if window is not None:
            return window
    return None


def rings_through_dnd(ctx: RingContext) -> bool:
    """The caller is named by the unit's ``ring_through_dnd`` (its device, its device's group,
    or its user id)."""
    bypass = ctx.ring_through_dnd
    if bypass is None:
        return False
    if ctx.caller.kind is PartyKind.DEVICE:
        return ctx.caller.id in bypass.devices or (
            ctx.caller_group is not None and ctx.caller_group in bypass.groups
        )
    return ctx.caller.id in bypass.users


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def dnd_reason(person: PersonAvailability, ctx: RingContext, at: datetime) -> str | None:
    """Why ``person`` is in do-not-disturb at ``at`` (a sentence starting ``dnd:``), or None.
    First that applies: the manager's switch, the manual switch, the person's quiet hours, the
    unit's quiet hours (residents of the unit called only)."""
    who = f"user {person.user_id!r}"
    if person.manager_dnd:
        return f"dnd: {who} is on do-not-disturb (set by the property manager)"
    if dnd_active(person, at):
        until = f" until {_iso(person.dnd_until)}" if person.dnd_until else ""
        return f"dnd: {who} switched do-not-disturb on{until}"
    window = first_quiet_window(person.quiet_hours, at, ctx.time_zone)
    if window is not None:
        return f"dnd: {who} quiet hours {window.label} (until {_iso(window.end)})"
    if ctx.listener_is_resident and ctx.unit_id is not None:
        window = first_quiet_window(ctx.unit_quiet_hours, at, ctx.time_zone)
        if window is not None:
            return f"dnd: unit {ctx.unit_id!r} quiet hours {window.label} (until {_iso(window.end)})"
    return None


def check(person: PersonAvailability, ctx: RingContext, at: datetime) -> Skip | None:
    """May ``person`` be rung for the call ``ctx`` at ``at`` (aware)? None = yes, else the
    :class:`Skip` (module docstring: away first, then do-not-disturb unless the caller rings
    through it)."""
    if away_active(person, at):
        until = f" until {_iso(person.away_until)}" if person.away_until else ""
        return Skip(ErrCode.LISTENER_AWAY, f"away: user {person.user_id!r} is away{until}")
    reason = dnd_reason(person, ctx, at)
    if reason is not None and not rings_through_dnd(ctx):
        return Skip(ErrCode.DO_NOT_DISTURB, reason)
    return None


def presence(person: PersonAvailability, at: datetime, call_id: str | None = None) -> Presence:
    """The person's :class:`Presence` at ``at``; ``call_id``: the call holding their line (the
    id the tenant knows), None when it is free. ``in_call`` wins over ``away``."""
    away = away_active(person, at)
    if call_id is not None:
        status = PresenceStatus.IN_CALL
    else:
        status = PresenceStatus.AWAY if away else PresenceStatus.AVAILABLE
    return Presence(
        user_id=person.user_id,
        status=status,
        away=away,
        away_since=person.away_since if away else None,
        away_until=person.away_until if away else None,
        in_call=call_id is not None,
        call_id=call_id,
    )

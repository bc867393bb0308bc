"""Who may be rung, and when (issue 11 item 5, issue 10 items 1-2): the contracts of a person's
and a unit's availability. The rules that decide are pure functions in
:mod:`ringflow.availability` (evaluated at the ring's instant); PostgreSQL only loads the data
(``store/availability.py``, table ``user_availability``: migrations 0009 and 0010).

- **Do-not-disturb (DND)**, any of: the property manager's ``User.do_not_disturb`` (directory);
  the person's own manual switch with an optional expiry (``PUT /v1/me/do-not-disturb`` from
  the resident app, ``PUT /v1/users/{user_id}/do-not-disturb`` from the backend); the person's
  weekly :class:`QuietHours` (``PUT /v1/me/quiet-hours``, ``PUT /v1/users/{user_id}/quiet-hours``);
  the unit's weekly quiet hours (``EscalationPolicy.quiet_hours``, for the unit's residents).
  A listener in DND is skipped before ringing with errCode 1003 and a reason starting ``dnd:``,
  unless the unit's ``EscalationPolicy.ring_through_dnd`` names the caller.
- **Presence** (one per person of a tenant, whatever site or unit):
  :class:`PresenceStatus` ``available``, ``away`` (set by the person or the backend, optional
  expiry; skipped with errCode 1017, reason ``away: ...``) or ``in_call`` (derived: the
  person's line is held by a room of any site of the tenant; skipped as ``busy``, errCode 1002).
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from functools import lru_cache
from zoneinfo import available_timezones

from pydantic import AwareDatetime, Field, field_serializer, field_validator, model_validator

from ringflow.contracts.common import Contract

MAX_DND_S = 30 * 86400
"""The latest expiry a manual do-not-disturb or away may have: 30 days from now, seconds (a
forgotten switch must not silence a flat for longer without the resident choosing "until I
switch it off")."""

MAX_QUIET_HOURS = 14
"""Most quiet-hour rules per person or unit (two a day)."""


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_time_zone(value: str) -> str:
    """``value`` when it is an IANA time zone name (``Europe/Berlin``, ``UTC``), checked against
    the zones this machine knows when it knows any; raises ``ValueError`` otherwise (pydantic
    turns it into a 422 ``validation``)."""
    zones = _zones()
    if zones and value != "UTC" and value not in zones:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return value


class DoNotDisturbIn(Contract):
    """``PUT .../do-not-disturb`` body: ``until`` (UTC, in the future, at most
    :data:`MAX_DND_S` ahead) or None = until switched off."""

    until: AwareDatetime | None = None


class DoNotDisturb(Contract):
    """A person's manual do-not-disturb as the ring plan sees it now (quiet hours are not in
    it: ``GET .../quiet-hours``).

    - ``active``: calls skip this person now (own switch on and not expired, or ``by_manager``);
    - ``until``: when the own switch expires (None: no expiry, or off);
    - ``since``: when it was switched on (None: off);
    - ``by_manager``: the property manager's ``User.do_not_disturb`` (directory; the
      resident cannot switch that one off).
    """

    active: bool
    until: datetime | None = None
    since: datetime | None = None
    by_manager: bool = False
    own: bool = Field(False, description="the person's own switch is on and not expired")


class Weekday(StrEnum):
    """A day of the week, in ``datetime.weekday()`` order (Monday first)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """0 (Monday) .. 6 (Sunday), as ``date.weekday()``."""
        return list(Weekday).index(self)


class QuietHours(Contract):
    """One weekly quiet-hours rule: on each of ``days``, from ``start`` to ``end`` local
    wall-clock time (``HH:MM``) in ``time_zone`` (an IANA name; None = the time zone of the
    site of the unit called).

    ``end`` at or before ``start`` ends on the next day: ``{days: [mon], start: "22:00", end:
    "07:00"}`` is Monday 22:00 to Tuesday 07:00 (``days`` are the days the quiet hours START
    on). ``start == end`` is refused (use a manual do-not-disturb for whole days).

    Daylight saving time (the person's clock decides, ``ringflow.availability``): each
    boundary is the first instant the local clock shows that time or later. So a 22:00-07:00
    rule lasts 8 real hours on the spring-forward night and 10 on the fall-back night, and ends
    when the clock shows 07:00; a boundary inside the skipped hour (02:30 on a spring-forward
    night in Europe/Berlin) takes effect at 03:00, and one inside the repeated hour (02:30 on a
    fall-back night) at its first occurrence (summer time), once.
    """

    days: list[Weekday] = Field(default_factory=lambda: list(Weekday), min_length=1, max_length=7)
    start: time
    end: time
    time_zone: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None or value.second or value.microsecond:
            raise ValueError("a local wall-clock time HH:MM, without seconds or a zone")
        return value

    @field_serializer("start", "end")
    def _hhmm(self, value: time) -> str:
        return f"{value:%H:%M}"

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        if len(set(self.days)) != len(self.days):
            raise ValueError("a day is listed twice")
        return self


class QuietHoursIn(Contract):
    """``PUT .../quiet-hours`` body and answer: a person's weekly rules (an empty list: none)."""

    rules: list[QuietHours] = Field(default_factory=list, max_length=MAX_QUIET_HOURS)


class RingThroughDnd(Contract):
    """Callers that ring a unit's listeners even when they are in do-not-disturb (manual,
    manager's or quiet hours; never through ``away`` or a busy line): ``groups`` (device group
    ids: the concierge desk, an emergency panel group), ``devices`` (device sns) and ``users``
    (staff who call from the app). Ids of the unit's tenant; unknown ids match nobody."""

    groups: list[str] = Field(default_factory=list, max_length=32)
    devices: list[str] = Field(default_factory=list, max_length=32)
    users: list[str] = Field(default_factory=list, max_length=32)


class PresenceStatus(StrEnum):
    """A person's presence (one per person of a tenant, across sites)."""

    AVAILABLE = "available"
    AWAY = "away"  # set by the person or the backend: calls skip them (errCode 1017)
    IN_CALL = "in_call"  # derived: their line is held (ringing or talking); calls find them busy


class PresenceIn(Contract):
    """``PUT /v1/me/presence`` / ``PUT /v1/users/{user_id}/presence`` body: ``away`` until
    ``until`` (UTC, in the future, at most :data:`MAX_DND_S` ahead; None = until set back) or
    ``available``. ``in_call`` is derived and cannot be set."""

    status: PresenceStatus
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _settable(self) -> PresenceIn:
        if self.status is PresenceStatus.IN_CALL:
            raise ValueError("in_call is derived from the person's calls and cannot be set")
        if self.status is PresenceStatus.AVAILABLE and self.until is not None:
            raise ValueError("until goes with away only")
        return self


class Presence(Contract):
    """A person's presence now (``GET /v1/users/{user_id}/presence``, ``GET /v1/me/presence``,
    push ``presence``).

    - ``status``: ``in_call`` when their line is held by a room (any site of the tenant), else
      ``away`` when their away is set and not expired, else ``available``;
    - ``away``: their away is set and not expired (also while ``in_call``); ``away_since``,
      ``away_until`` (None: until set back);
    - ``in_call``: their line is held; ``call_id``: the call holding it (the id the tenant knows).
    """

    user_id: str
    status: PresenceStatus
    away: bool = False
    away_since: datetime | None = None
    away_until: datetime | None = None
    in_call: bool = False
    call_id: str | None = None

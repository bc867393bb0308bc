"""The scenario file of ``ringflow simulate BUILDING SCENARIO`` (YAML or JSON).

Example (``examples/scenario-night.yaml``)::

    unit: "201"                 # the unit called (of the building file's site, or ``site``)
    caller: LOBBY-1             # a device sn of the site; default: the site's first device
    at: "Tue 23:30"             # the call's start: a local wall time in the site's zone (the
                                # next such instant), "23:30" (the next one on any day), or an
                                # ISO datetime with offset (must be in the future)
    last_answered: grace        # round-robin memory of the unit (optional)
    people:                     # what is stored about people at the start (default: available)
      farid: {dnd: true, dnd_until: "Wed 07:00"}   # manual do-not-disturb, optional expiry
      grace: {away: true}                          # away, optional away_until
      hugo: {busy: true}                           # in another call: their line is held
      concierge: {quiet_hours: [{days: [sun], start: "00:00", end: "06:00"}]}
      # also manager_dnd: true (the property manager's switch)
    reactions:                  # what a person does each time they are rung, counted from
      concierge: {answers_after_s: 8, talks_s: 20}  # their ``ringing`` (then hangs up)
      farid: {passes_after_s: 3}                    # or rejects_after_s
    edits:                      # changes at ``at_s`` seconds after the call started, stored in
      - at_s: 10                # the in-memory directory and signalled as ``plan_changed``
        policy: {ring_timeout_s: 15}                # fields of the unit's policy
        residents: [grace, farid]                   # the unit's residents, new order
        people: {farid: {dnd: false}}               # a person's state, replaced
        what: "unit 201 updated"                    # the planChanged reason (default as the API)
    hang_up_at_s: 50            # the caller gives up then (optional)

Times ``*_until`` take the same forms as ``at`` (a wall time: the next one after the start).
Durations are seconds of simulated time.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from ringflow.availability import PersonAvailability, local_instant
from ringflow.contracts.availability import QuietHours
from ringflow.contracts.common import Contract, Identifier
from ringflow.contracts.directory import Building
from ringflow.contracts.policies import EscalationPolicy
from ringflow.directory_load import BuildingFileError, read_document


class SimulationError(ValueError):
    """A scenario that cannot be played (one line, for the CLI): e.g. a start in the past."""


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WALL = re.compile(r"^(?:(?P<day>[A-Za-z]{3})[a-z]*\s+)?(?P<h>\d{1,2}):(?P<m>\d{2})$")


def _check_when(value: str) -> str:
    m = _WALL.match(value.strip())
    if m is not None:
        day = m["day"]
        if day is not None and day.lower() not in _DAYS:
            raise ValueError(f"unknown day {day!r} (Mon..Sun)")
        if int(m["h"]) > 23 or int(m["m"]) > 59:
            raise ValueError("not a wall-clock time HH:MM")
        return value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "a local wall time like 'Tue 23:30' or '23:30', or an ISO datetime with offset"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError("an ISO datetime needs its offset (2026-12-01T23:30:00+01:00)")
    return value


def resolve_when(value: str, zone: str, after: datetime) -> datetime:
    """The instant (aware, UTC) of ``value`` (a checked ``at``/``*_until``): a wall time is the
    first instant at or after ``after`` whose local clock in ``zone`` shows it on the named day
    (any day when none), by :func:`ringflow.availability.local_instant` (DST-correct); an ISO
    datetime is itself."""
    m = _WALL.match(value.strip())
    if m is None:
        return datetime.fromisoformat(value).astimezone(ZoneInfo("UTC"))
    tz = ZoneInfo(zone)
    wall = time(int(m["h"]), int(m["m"]))
    weekday = _DAYS.index(m["day"].lower()) if m["day"] else None
    first: date = after.astimezone(tz).date() - timedelta(days=1)
    for i in range(9):
        day = first + timedelta(days=i)
        if weekday is not None and day.weekday() != weekday:
            continue
        at = local_instant(day, wall, tz)
        if at >= after:
            return at
    raise AssertionError("unreachable: a weekday recurs within 9 days")


class PersonIn(Contract):
    """What is stored about one person (``people``, an edit's ``people``): the manager's
    do-not-disturb (``manager_dnd``; default: the building file's ``do_not_disturb``), the
    person's own manual ``dnd``/``away`` with optional ``*_until`` (module docstring's time
    forms), ``busy`` (in another call: their line is held), their own ``quiet_hours``."""

    manager_dnd: bool | None = None
    dnd: bool = False
    dnd_until: str | None = None
    away: bool = False
    away_until: str | None = None
    busy: bool = False
    quiet_hours: list[QuietHours] = Field(default_factory=list, max_length=16)

    @field_validator("dnd_until", "away_until")
    @classmethod
    def _when(cls, value: str | None) -> str | None:
        return None if value is None else _check_when(value)

    def availability(self, user_id: str, manager_dnd: bool, zone: str, start: datetime) -> PersonAvailability:
        """The :class:`PersonAvailability` the rules evaluate; times resolved after ``start``."""

        def until(v: str | None) -> datetime | None:
            return None if v is None else resolve_when(v, zone, start)

        return PersonAvailability(
            user_id=user_id,
            manager_dnd=manager_dnd if self.manager_dnd is None else self.manager_dnd,
            dnd=self.dnd,
            dnd_since=start if self.dnd else None,
            dnd_until=until(self.dnd_until),
            away=self.away,
            away_since=start if self.away else None,
            away_until=until(self.away_until),
            quiet_hours=tuple(self.quiet_hours),
        )


class Reaction(Contract):
    """What a person does each time they are rung, in seconds after their ``ringing``: exactly
    one of ``answers_after_s`` (then talks ``talks_s`` and hangs up), ``passes_after_s``
    (``pass``), ``rejects_after_s`` (``reject``). A person without a reaction lets it ring."""

    answers_after_s: float | None = Field(None, ge=0, le=3600)
    passes_after_s: float | None = Field(None, ge=0, le=3600)
    rejects_after_s: float | None = Field(None, ge=0, le=3600)
    talks_s: float = Field(20.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _one(self) -> Reaction:
        given = [
            x for x in (self.answers_after_s, self.passes_after_s, self.rejects_after_s) if x is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of answers_after_s, passes_after_s, rejects_after_s")
        return self

    @property
    def action(self) -> tuple[str, float]:
        """(``answer`` | ``pass`` | ``reject``, seconds after the ring)."""
        for name, after in (
            ("answer", self.answers_after_s),
            ("pass", self.passes_after_s),
            ("reject", self.rejects_after_s),
        ):
            if after is not None:
                return name, after
        raise AssertionError("validated: one is set")


class Edit(Contract):
    """A change ``at_s`` seconds after the call started: ``policy`` (fields of the unit's
    policy to change), ``residents`` (the unit's new residents, in hunt order), ``people``
    (persons' states, each replaced). Applied to the in-memory directory, then delivered as
    the ``plan_changed`` signal with ``what`` (default: ``unit ID updated`` as
    ``PUT /v1/units/{id}`` says it, or ``user ID updated`` for people only)."""

    at_s: float = Field(..., ge=0, le=86400)
    policy: EscalationPolicy | None = None
    residents: list[Identifier] | None = Field(None, max_length=50)
    people: dict[Identifier, PersonIn] | None = None
    what: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _something(self) -> Edit:
        if self.policy is None and self.residents is None and not self.people:
            raise ValueError("an edit changes at least one of policy, residents, people")
        return self

    def sentence(self, unit_id: str) -> str:
        """The ``planChanged`` reason of this edit."""
        if self.what:
            return self.what
        if self.policy is not None or self.residents is not None:
            return f"unit {unit_id} updated"
        return "; ".join(f"user {uid} updated" for uid in self.people or {})


class Scenario(Contract):
    """One simulated call (module docstring)."""

    unit: Identifier
    site: Identifier | None = None
    caller: Identifier | None = None
    at: str
    last_answered: Identifier | None = None
    people: dict[Identifier, PersonIn] = Field(default_factory=dict)
    reactions: dict[Identifier, Reaction] = Field(default_factory=dict)
    edits: list[Edit] = Field(default_factory=list, max_length=100)
    hang_up_at_s: float | None = Field(None, ge=0, le=86400)

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        return _check_when(value)


def read_scenario(path: str | Path) -> Scenario:
    """The validated :class:`Scenario` in ``path`` (YAML, or JSON for ``.json``). Raises
    :class:`~ringflow.directory_load.BuildingFileError` (one line: file, line/column or the
    bad fields' paths)."""
    return read_document(path, Scenario, "unit, at, people, reactions, edits, ...")


def site_of(building: Building) -> tuple[str, str]:
    """(site id, IANA zone) of the building file (the default site in UTC without ``site:``)."""
    if building.site is None:
        return "default", "UTC"
    return building.site.id, building.site.time_zone


def check_scenario(scenario: Scenario, building: Building, path: str | Path) -> None:
    """Raise :class:`BuildingFileError` (one line, naming ``path`` and the field) when the
    scenario names what the building does not have: the unit, the site, the caller device, a
    user in ``people``/``reactions``/an edit, a resident of an edit; or a policy edit that
    makes the unit's policy invalid."""
    site, _ = site_of(building)
    users = {u.id for u in building.users}
    problems: list[str] = []
    if scenario.site is not None and scenario.site != site:
        problems.append(f"site: {scenario.site!r} is not the building's site ({site!r})")
    units = {u.id: u for u in building.units}
    unit = units.get(scenario.unit)
    if unit is None:
        problems.append(
            f"unit: no unit {scenario.unit!r} in the building (it has {', '.join(units) or 'none'})"
        )
    devices = [d.sn for d in building.devices]
    if scenario.caller is not None and scenario.caller not in devices:
        problems.append(f"caller: no device {scenario.caller!r} in the building")
    if scenario.caller is None and not devices:
        problems.append("caller: the building has no device to call from")
    if scenario.last_answered is not None and scenario.last_answered not in users:
        problems.append(f"last_answered: no user {scenario.last_answered!r}")
    for where, ids in (("people", scenario.people), ("reactions", scenario.reactions)):
        problems += [f"{where}.{uid}: no user {uid!r} in the building" for uid in ids if uid not in users]
    for i, edit in enumerate(scenario.edits):
        problems += [
            f"edits.{i}.people.{uid}: no user {uid!r} in the building"
            for uid in edit.people or {}
            if uid not in users
        ]
        problems += [
            f"edits.{i}.residents: no user {uid!r} in the building"
            for uid in edit.residents or []
            if uid not in users
        ]
        if edit.policy is not None and unit is not None:
            patch = {k: getattr(edit.policy, k) for k in edit.policy.model_fields_set}
            if "fallback_user_id" in patch and patch["fallback_user_id"] not in users | {None}:
                problems.append(f"edits.{i}.policy.fallback_user_id: no user {patch['fallback_user_id']!r}")
    if problems:
        raise BuildingFileError(f"{path}: " + "; ".join(problems))

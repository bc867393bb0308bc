"""``ringflow simulate --check BUILDING``: what a building file's policies would do over a week.

For each unit, each device of the site that may call it (one that some resident or the fallback
authorized) and each instant of the coming week (Monday 00:00 to Monday 00:00 in the site's
zone) that matters (every boundary of every quiet-hours rule of the unit, and one instant per
hour), the production pre-call checks (``activities/directory.py`` ``precall_with``, with the
pure availability rules of ``ringflow/availability.py``) say who of the residents and the
fallback could be rung. Findings (one line each):

- ``unit 201 rings nobody from LOBBY-1 Mon,Tue 22:00-07:00 Europe/Berlin (...)``: a window in
  which every resident and the fallback would be skipped (with why);
- a fallback in do-not-disturb: the property manager's switch on the fallback user, or a
  fallback that is a resident of the unit (then the unit's quiet hours skip it too);
- unreachable targets: a resident or fallback that is not a user of the file, or that has not
  authorized any device of the site (no call can ever ring them, errCode 9); a
  ``ring_through_dnd`` that names a group or device the file does not have.

The people's own switches and quiet hours are theirs (the API's), not the file's: the check
assumes everyone available but for the file's rules.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from activities.directory import precall_with
from ringflow.availability import local_instant
from ringflow.contracts.activities import PrecallInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import Building, Unit
from ringflow.simulation.memory import MemoryDirectory
from ringflow.simulation.scenario import site_of

_DAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW = re.compile(r" [A-Z][a-z]{2} \d\d:\d\d-\d\d:\d\d \S+")


def week_start(now: datetime, zone: str) -> date:
    """The Monday that starts the coming week in ``zone`` (today when it is a Monday)."""
    today = now.astimezone(ZoneInfo(zone)).date()
    return today + timedelta(days=(7 - today.weekday()) % 7)


def _instants(unit: Unit, monday: date, zone: str) -> list[datetime]:
    """Every instant evaluated for ``unit`` (aware UTC, sorted): each hour of the week and each
    boundary of the unit's quiet-hours rules on each day (per the rules' DST handling), from
    Monday 00:00 to the next Monday 00:00 (excluded), plus the whole Monday after (a window of
    Sunday night goes on there)."""
    tz = ZoneInfo(zone)
    points: set[datetime] = set()
    for d in range(8):
        day = monday + timedelta(days=d)
        for h in range(24):
            points.add(local_instant(day, time(h), tz))
        for rule in unit.policy.quiet_hours:
            rtz = ZoneInfo(rule.time_zone) if rule.time_zone else tz
            for wall in (rule.start, rule.end):
                points.add(local_instant(day, wall, rtz))
    return sorted(points)


def _short(reason: str | None) -> str:
    """The reason without its window's day, hours and expiry (the finding says when)."""
    return _WINDOW.sub("", (reason or "").split(" (until")[0])


async def _skips(
    directory: MemoryDirectory, unit: Unit, caller: Party, targets: list[str], at: datetime
) -> dict[str, str] | None:
    """Why each of ``targets`` would be skipped for ``caller`` at ``at``; None when one rings."""
    why: dict[str, str] = {}
    for uid in targets:
        res = await precall_with(
            directory,
            PrecallInput(
                caller=caller,
                listener=Party(kind=PartyKind.USER, id=uid),
                tenant_id=directory.tenant,
                at=at,
                unit_id=unit.id,
                site_id=directory.site_id,
            ),
        )
        if res.ok:
            return None
        why[uid] = f"errCode {int(res.err_code)} {_short(res.reason)}".strip()
    return why


def _label(start: datetime, end: datetime, zone: str) -> tuple[str, str]:
    tz = ZoneInfo(zone)
    s, e = start.astimezone(tz), end.astimezone(tz)
    return _DAY[s.weekday()], f"{s:%H:%M}-{e:%H:%M}"


def _explain(why: dict[str, str], fallback: str | None) -> str:
    reasons = set(why.values())
    if len(reasons) == 1 and len(why) > 1:
        text = f"every one skipped: {reasons.pop()}"
    else:
        text = "; ".join(f"{uid} {r}" for uid, r in why.items())
    return text + ("" if fallback else "; no fallback")


async def check_building(building: Building, now: datetime) -> list[str]:
    """The findings for ``building`` over the week after ``now`` (module docstring), one line
    each, in file order of the units; empty when there is none."""
    site, zone = site_of(building)
    directory = MemoryDirectory(building, site, zone)
    users = directory.users
    groups = {g.id for g in building.groups}
    findings: list[str] = []
    monday = week_start(now, zone)
    week_end = local_instant(monday + timedelta(days=7), time(0), ZoneInfo(zone))
    for unit in directory.units.values():
        fallback = unit.policy.fallback_user_id
        named = list(dict.fromkeys([*unit.residents, *([fallback] if fallback else [])]))
        for uid in named:
            role = "fallback" if uid == fallback and uid not in unit.residents else "resident"
            if uid not in users:
                findings.append(f"unit {unit.id}: {role} {uid!r} is not a user of the file (unreachable)")
            elif not any(directory.authorized(uid, sn) for sn in directory.devices):
                findings.append(
                    f"unit {unit.id}: {role} {uid!r} has not authorized any device of site {site} "
                    "(unreachable: errCode 9 from every door)"
                )
        if fallback is not None and fallback in users:
            if users[fallback].do_not_disturb:
                findings.append(
                    f"unit {unit.id}: fallback {fallback!r} is in do-not-disturb"
                    " (the property manager's switch)"
                )
            if fallback in unit.residents and unit.policy.quiet_hours:
                findings.append(
                    f"unit {unit.id}: fallback {fallback!r} is a resident,"
                    " so the unit's quiet hours skip it too"
                )
        bypass = unit.policy.ring_through_dnd
        if bypass is not None:
            findings += [
                f"unit {unit.id}: ring_through_dnd names group {g!r}, which the file does not have"
                for g in bypass.groups
                if g not in groups
            ]
            findings += [
                f"unit {unit.id}: ring_through_dnd names device {sn!r}, which the file does not have"
                for sn in bypass.devices
                if sn not in directory.devices
            ]
        targets = [uid for uid in named if uid in users]
        if not targets:
            findings.append(f"unit {unit.id} has nobody to ring (no residents, no fallback)")
            continue
        callers = [sn for sn in directory.devices if any(directory.authorized(u, sn) for u in targets)]
        if not callers:
            findings.append(f"unit {unit.id} rings nobody from any device (no target authorized one)")
        windows: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (hours, why) -> days
        points = _instants(unit, monday, zone)
        for sn in callers:
            caller = Party(kind=PartyKind.DEVICE, id=sn)
            before = await _skips(directory, unit, caller, targets, points[0] - timedelta(seconds=1))
            run: tuple[datetime, dict[str, str]] | None = None
            rang = False
            continuing = before is not None  # a window of Sunday night goes on (reported there)
            for at in points:
                why = await _skips(directory, unit, caller, targets, at)
                rang = rang or why is None
                continuing = continuing and why is not None
                if why is not None and run is None and not continuing:
                    run = (at, why)
                if why is None and run is not None:
                    if run[0] < week_end:
                        day, hours = _label(run[0], at, zone)
                        windows[(hours, _explain(run[1], fallback), day)].append(sn)
                    run = None
                if at >= week_end and run is None:
                    break
            if not rang and before is not None:
                findings.append(
                    f"unit {unit.id} rings nobody from {sn} at any time ({_explain(before, fallback)})"
                )
        by_window: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (devices, hours, why) -> days
        for (hours, explained, day), sns in windows.items():
            by_window[(", ".join(dict.fromkeys(sns)), hours, explained)].append(day)
        for (devices, hours, explained), days in by_window.items():
            findings.append(
                f"unit {unit.id} rings nobody from {devices} {','.join(days)} {hours} {zone} ({explained})"
            )
    return findings

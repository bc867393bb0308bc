"""A simulated call as text (the timeline ``ringflow calls show`` prints, from
``ringflow/timeline.py``) or as JSON.

Times are seconds of simulated time since the call started (its ``callStarted``).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from ringflow.contracts.calls import CallView, Phase
from ringflow.contracts.common import RoomType
from ringflow.simulation.runner import Simulation
from ringflow.timeline import COLUMNS, event_detail, event_line, party_label, summary_lines


def call_view(sim: Simulation) -> CallView:
    """The simulated call as the API's ``CallView`` (what ``ringflow calls show`` reads)."""
    res = sim.result
    return CallView(
        call_id=res.call_id,
        caller=sim.caller,
        caller_name=sim.caller_name,
        unit_id=sim.unit_id,
        room_type=RoomType.VIDEO,
        strategy=next(
            (
                e.data["strategy"]
                for e in sim.events
                if e.name.value == "callStarted" and "strategy" in e.data
            ),
            "sequential",
        ),
        phase=Phase.ENDED,
        started_at=sim.started_at,
        answered_by=res.answered_by,
        end_reason=res.end_reason,
        err_code=res.err_code,
        keep_time_s=res.keep_time_s,
        attempts=res.attempts,
        events=sim.events,
    )


def _local(sim: Simulation) -> str:
    local = sim.start.astimezone(ZoneInfo(sim.time_zone))
    return f"{local:%a %Y-%m-%d %H:%M} {sim.time_zone}"


def header_lines(sim: Simulation, building: str, scenario: str) -> list[str]:
    """Which call was simulated: the files, the unit, the caller, the start instant."""
    return [
        f"simulated: {scenario} on {building} (time-skipping test server, no media)",
        f"  unit        : {sim.unit_id} ({sim.unit_name}), site {sim.site_id} ({sim.site_name})",
        f"  caller      : {party_label(sim.caller)} ({sim.caller_name})",
        f"  starts      : {_local(sim)} ({sim.start.isoformat()})",
        "  times       : seconds of simulated time since callStarted (exact to ~0.05 s)",
    ]


def text_lines(sim: Simulation, building: str, scenario: str) -> list[str]:
    """The header, the timeline (``ringflow calls show``'s columns and lines), how the call
    went (``summary_lines``), each attempt with its outcome and reason, and the notes."""
    view = call_view(sim)
    lines = [*header_lines(sim, building, scenario), "", COLUMNS]
    lines += [event_line(e, sim.started_at) for e in sim.events]
    summary = [s for s in summary_lines(view) if not s.lstrip().startswith(("started", "Temporal UI"))]
    lines += ["", *summary]
    for a in sim.result.attempts:
        outcome = a.outcome.value if a.outcome is not None else a.phase.value
        why = f" errCode {int(a.err_code)}" if a.err_code else ""
        extra = f" round {a.round}" + (" fallback" if a.fallback else "")
        lines.append(
            f"    {a.seq}. {party_label(a.listener):<18} {outcome:<10}{extra}{why}"
            + (f": {a.reason}" if a.reason else "")
        )
    if sim.notes:
        lines += ["", "  refused reactions:", *[f"    {n}" for n in sim.notes]]
    return lines


def as_json(sim: Simulation, building: str, scenario: str) -> dict[str, Any]:
    """The same as a JSON document: ``scenario`` (files, unit, caller, start local and UTC),
    ``events`` (``at_s`` to the millisecond, ``name``, ``party``, ``listener``, ``reason``,
    ``err_code``, ``detail`` as in the timeline, ``data``), ``result`` (end reason, answered by,
    keepTime, attempts with outcomes and reasons), ``notes``."""
    res = sim.result
    return {
        "scenario": {
            "building": building,
            "scenario": scenario,
            "unit": sim.unit_id,
            "site": sim.site_id,
            "time_zone": sim.time_zone,
            "caller": party_label(sim.caller),
            "start_local": _local(sim),
            "start_utc": sim.start.isoformat(),
        },
        "events": [
            {
                "at_s": round((e.at - sim.started_at).total_seconds(), 3),
                "name": e.name.value,
                "party": party_label(e.party) or None,
                "listener": party_label(e.listener) or None,
                "reason": e.reason,
                "err_code": int(e.err_code) if e.err_code is not None else None,
                "detail": event_detail(e),
                "data": e.data,
            }
            for e in sim.events
        ],
        "result": {
            "end_reason": res.end_reason,
            "err_code": int(res.err_code) if res.err_code is not None else None,
            "answered_by": party_label(res.answered_by) or None,
            "keep_time_s": res.keep_time_s,
            "attempts": [
                {
                    "seq": a.seq,
                    "round": a.round,
                    "fallback": a.fallback,
                    "listener": party_label(a.listener),
                    "outcome": a.outcome.value if a.outcome is not None else None,
                    "end_reason": a.end_reason.value if a.end_reason is not None else None,
                    "err_code": int(a.err_code) if a.err_code else None,
                    "reason": a.reason,
                }
                for a in res.attempts
            ],
        },
        "notes": sim.notes,
    }

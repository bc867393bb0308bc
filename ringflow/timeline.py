"""A call's timeline as text: the lines ``ringflow demo`` prints live and ``ringflow calls
show`` / ``ringflow calls tail`` print from the call's history (``GET /v1/calls/{id}``).

One event per line: its time in seconds since the call started (``CallView.started_at``,
workflow time), its name (docs/events.md), the party that caused it, the listener of its
room and the details (``keepTime``, ``err_code``, ``reason``; for in-call actions the
action, result and detail). The picture of the same history is ``api/timeline_svg.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ringflow.contracts.calls import CallView
from ringflow.contracts.common import Party
from ringflow.contracts.events import CallEvent, EventName

COLUMNS = f"{'time':>7}  {'event':<20} {'party':<18} {'listener':<14} detail"
"""The column header above the event lines."""


def party_label(party: Party | dict[str, Any] | str | None) -> str:
    """``kind:id`` of a party (a :class:`Party`, its JSON dict, or already a key); '' for None."""
    if isinstance(party, Party):
        return party.key()
    if isinstance(party, dict):
        return f"{party['kind']}:{party['id']}"
    return party or ""


def event_detail(event: CallEvent) -> str:
    """The event's details as ``key=value`` words: ``keepTime``, ``err_code`` and ``reason``
    when set; for ``customAction`` / ``customActionResult`` the data's action, result and
    detail (reference FAQ 1.2)."""
    if event.name in (EventName.CUSTOM_ACTION, EventName.CUSTOM_ACTION_RESULT):
        data = event.data or {}
        return " ".join(f"{k}={data[k]}" for k in ("action", "result", "detail") if data.get(k))
    values = {"keepTime": event.keep_time_s, "err_code": event.err_code, "reason": event.reason}
    return " ".join(
        f"{k}={int(v) if k == 'err_code' else v}" for k, v in values.items() if v not in (None, "")
    )


def event_line(event: CallEvent, started_at: datetime) -> str:
    """One line of the timeline for ``event``; time = ``event.at - started_at`` in seconds."""
    at = (event.at - started_at).total_seconds()
    return (
        f"{at:6.1f}s  {event.name.value:<20} {party_label(event.party):<18} "
        f"{party_label(event.listener):<14} {event_detail(event)}"
    ).rstrip()


def call_title(view: CallView) -> str:
    """``caller (name) -> unit 101: call ID``, or the rung parties for a call without a unit."""
    caller = party_label(view.caller) + (f" ({view.caller_name})" if view.caller_name else "")
    if view.unit_id:
        target = f"unit {view.unit_id}"
    else:
        target = ", ".join(dict.fromkeys(party_label(a.listener) for a in view.attempts)) or "?"
    return f"{caller} -> {target}: call {view.call_id}"


def timeline_lines(view: CallView) -> list[str]:
    """The title, the column header and every event of ``view`` (history order)."""
    return [call_title(view), COLUMNS] + [event_line(e, view.started_at) for e in view.events]


def summary_lines(view: CallView) -> list[str]:
    """How the call went: phase, answered by, keepTime (talk only, seconds), end reason and
    errCode, each attempt's listener and outcome, the Temporal UI link."""
    outcomes = ", ".join(
        f"{a.listener.id}={a.outcome.value if a.outcome else a.phase.value}" for a in view.attempts
    )
    lines = [
        f"  phase       : {view.phase.value}",
        f"  started     : {view.started_at.isoformat()}",
        f"  answered by : {party_label(view.answered_by) or '-'}",
        f"  keepTime    : {view.keep_time_s if view.keep_time_s is not None else '-'} s (talk phase only)",
        f"  end reason  : {view.end_reason or '-'}"
        + (f" (errCode {int(view.err_code)})" if view.err_code is not None else ""),
        f"  attempts    : {outcomes or '-'}",
    ]
    if view.temporal_ui_url:
        lines.append(f"  Temporal UI : {view.temporal_ui_url}")
    return lines

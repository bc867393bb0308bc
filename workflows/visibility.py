"""``CallVisibility``: what operations see of a building call in the Temporal UI.

One row per building call in the workflow list, with search attributes (``RingflowPhase``,
``RingflowUnit``, ``RingflowCaller``, ``RingflowCallees``, ``RingflowAnsweredBy``,
``RingflowEndReason``) usable as list columns and filters, so that a missed or aborted
call is told apart from a talked one behind the same green COMPLETED; and the live
details (``workflow.set_current_details``): one header line plus one line per room.
Upserts are sent only for values that changed (each is a history event and, on Temporal
Cloud, a billed action). docs/design.md#visibility.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.calls import Phase
    from ringflow.contracts.search import (
        CALL_ANSWERED_BY,
        CALL_CALLEES,
        CALL_CALLER,
        CALL_END_REASON,
        CALL_PHASE,
        CALL_UNIT,
    )


class CallVisibility:
    """Search attributes and live details of one building call."""

    __slots__ = ("_pending", "_rooms", "header")

    def __init__(self) -> None:
        self.header = ""
        self._rooms: dict[str, str] = {}  # room_id -> its line, in attempt order
        self._pending: dict[str, SearchAttributeUpdate[Any]] = {}

    # ------------------------------------------------------------------ search attributes

    def _set(self, key: SearchAttributeKey[Any], value: Any) -> None:
        if workflow.info().typed_search_attributes.get(key) != value:
            self._pending[key.name] = key.value_set(value)

    def started(self, caller: str, unit_id: str | None, phase: Phase) -> None:
        """Caller, unit and phase (the API sets them at the start already: then no upsert)."""
        self._set(CALL_CALLER, caller)
        if unit_id:
            self._set(CALL_UNIT, unit_id)
        self._set(CALL_PHASE, phase.value)

    def callees(self, keys: list[str]) -> None:
        """Every party the plan may ring (``"user:alice"``...)."""
        self._set(CALL_CALLEES, keys)

    def phase(self, phase: Phase) -> None:
        """The building call's phase (docs/events.md)."""
        self._set(CALL_PHASE, phase.value)

    def answered_by(self, party_key: str) -> None:
        """Who answered."""
        self._set(CALL_ANSWERED_BY, party_key)

    def end_reason(self, reason: str) -> None:
        """The building call's end reason (``hangUpVoip``, ``timeout``, ``abortVoip``...)."""
        self._set(CALL_END_REASON, reason)

    def flush(self) -> None:
        """Upsert what changed since the last flush, as ONE command."""
        if self._pending:
            workflow.upsert_search_attributes(list(self._pending.values()))
            self._pending.clear()

    # ------------------------------------------------------------------ live details

    def details(self, header: str | None = None) -> None:
        """Set the header line (``"Maple Court Lobby -> unit 101: ringing"``) and publish."""
        if header is not None:
            self.header = header
        lines = [self.header, *(f"- {line}" for line in self._rooms.values())]
        workflow.set_current_details("\n".join(lines))

    def room(self, room_id: str, line: str) -> None:
        """Set room ``room_id``'s line (``"Bob: ringing, 30 s"``) and publish."""
        self._rooms[room_id] = line
        self.details()

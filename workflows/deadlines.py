"""``Deadlines``: the named durable deadlines of one room (ring, joins, timeLimit).

Every deadline is a workflow timer on the Temporal server (reference FAQ 1.1: no client-side
timers). The helper owns its state (samples-python ``updatable_timer``): the room sets and
clears deadlines by name, and waits for "a message or the earliest deadline".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.events import seconds


class Deadlines:
    """Named deadlines (workflow time, UTC), each with the timer summary shown in the UI."""

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[str, tuple[datetime, str]] = {}

    def set(self, name: str, after_s: float, summary: str, start: datetime | None = None) -> None:
        """Deadline ``name`` at ``start`` (default now) + ``after_s`` seconds; ``summary`` names
        what is waited for (``"ringing Bob"``), the remaining time is appended to it."""
        at = (start or workflow.now()) + timedelta(seconds=after_s)
        self._at[name] = (at, summary)

    def clear(self, *names: str) -> None:
        """Drop ``names`` (every deadline when none is given); unknown names are ignored."""
        if not names:
            self._at.clear()
        for name in names:
            self._at.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._at

    async def wait(self, wake: Callable[[], bool]) -> str | None:
        """Wait until ``wake()`` is true (returns None) or the earliest deadline passes (it is
        removed and its name returned). With no deadline, waits for ``wake()`` alone. One
        timer at a time: the earliest deadline's."""
        if wake():
            return None
        if not self._at:
            await workflow.wait_condition(wake)
            return None
        name, (at, summary) = min(self._at.items(), key=lambda kv: kv[1][0])
        timeout = (at - workflow.now()).total_seconds()
        if timeout > 0:
            try:
                await workflow.wait_condition(
                    wake, timeout=timeout, timeout_summary=f"{summary} ({seconds(timeout)})"
                )
                return None
            except TimeoutError:
                pass
        del self._at[name]
        return name

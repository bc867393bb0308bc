"""Call activities: line claims (busy), and the one-transaction ``record`` of a state change
(call row, attempts, events, push outbox, billing). SQL lives in ``store/calls.py`` and
``store/outbox.py``.

Every method is idempotent (safe to retry): writes are keyed by ids the workflow made.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from ringflow.contracts.activities import LineClaim, LineInput, RecordInput


class CallActivities:
    """The call workflows' write activities over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="claim_line")
    async def claim_line(self, inp: LineInput) -> LineClaim:
        """Claim the party's line for ``room_id`` atomically (busy check)."""
        raise NotImplementedError

    @activity.defn(name="release_line")
    async def release_line(self, inp: LineInput) -> None:
        """Release the party's line if ``room_id`` holds it."""
        raise NotImplementedError

    @activity.defn(name="record")
    async def record(self, inp: RecordInput) -> None:
        """Write one state change in one transaction (see ``RecordInput``)."""
        raise NotImplementedError

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.claim_line, self.release_line, self.record]

"""Directory activities: who to ring and may they be rung (reference section 1 pre-call checks).

Owned by the directory work; SQL lives in ``store/directory.py``.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from ringflow.contracts.activities import (
    PrecallInput,
    PrecallResult,
    RememberAnswerInput,
    ResolvedPlan,
    ResolveInput,
)


class DirectoryActivities:
    """Directory reads for the call workflows, over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="resolve_targets")
    async def resolve_targets(self, inp: ResolveInput) -> ResolvedPlan:
        """Targets of a building call (see ``ResolvedPlan``)."""
        raise NotImplementedError

    @activity.defn(name="precall_check")
    async def precall_check(self, inp: PrecallInput) -> PrecallResult:
        """The reference's pre-call checks for one pair (see ``PrecallResult``)."""
        raise NotImplementedError

    @activity.defn(name="remember_answer")
    async def remember_answer(self, inp: RememberAnswerInput) -> None:
        """Round-robin memory of who answered the unit's last call."""
        raise NotImplementedError

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.resolve_targets, self.precall_check, self.remember_answer]

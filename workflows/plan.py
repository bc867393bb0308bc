"""``RingPlan``: the stages of a building call's ring plan (reference FAQ 1.5, "round-robin
calling"), from the resolved targets and the unit's policy. Pure: no I/O, no workflow calls.

Strategies: sequential and round_robin ring one target per stage, in the resolved order (the
round-robin rotation is applied when the targets are resolved); simultaneous rings every
target in one stage, first answer wins. ``rounds`` repeats the list; the fallback target
(concierge) is rung once after every round. Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.activities import ResolvedPlan, Target
    from ringflow.contracts.policies import RingStrategy


@dataclass(frozen=True)
class Stage:
    """Targets rung together: one for sequential/round-robin, all for simultaneous."""

    targets: tuple[Target, ...]
    round: int
    fallback: bool
    ring_timeout_s: float

    def escalation_reason(self, previous: Stage) -> str:
        """Why the plan moved from ``previous`` to this stage: ``fallback``, ``round N`` or
        ``next target`` (the ``escalated`` event's reason, docs/events.md)."""
        if self.fallback:
            return "fallback"
        return f"round {self.round}" if self.round != previous.round else "next target"


class RingPlan:
    """The stages of one building call and how far it got (``next()``)."""

    def __init__(self, resolved: ResolvedPlan, default_ring_timeout_s: float) -> None:
        policy = resolved.policy
        ring = policy.ring_timeout_s or default_ring_timeout_s
        stages: list[Stage] = []
        for rnd in range(1, policy.rounds + 1):
            if not resolved.targets:
                break
            if policy.strategy == RingStrategy.SIMULTANEOUS:
                stages.append(Stage(tuple(resolved.targets), rnd, False, ring))
            else:
                stages += [Stage((t,), rnd, False, ring) for t in resolved.targets]
        if resolved.fallback is not None:
            fallback_ring = policy.fallback_ring_timeout_s or ring
            stages.append(Stage((resolved.fallback,), 1, True, fallback_ring))
        self.stages = stages
        self.position = 0  # stages started so far

    def next(self) -> Stage | None:
        """The next stage to ring, or None when the plan is exhausted."""
        if self.position >= len(self.stages):
            return None
        self.position += 1
        return self.stages[self.position - 1]

    @property
    def previous(self) -> Stage | None:
        """The stage before the current one (None for the first)."""
        return self.stages[self.position - 2] if self.position >= 2 else None

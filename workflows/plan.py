"""``RingPlan``: the stages of a building call's ring plan (reference FAQ 1.5, "round-robin
calling"), from the resolved targets and the unit's policy. Pure: no I/O, no workflow calls.

Strategies: sequential and round_robin ring one target per stage, in the resolved order (the
round-robin rotation is applied when the targets are resolved); simultaneous rings every
target in one stage, first answer wins. ``rounds`` repeats the list; the fallback target
(concierge) is rung once after every round. Durations are seconds.

The plan keeps what the building call needs of ``resolve_targets``' ``ResolvedPlan`` as
plain data in slots (a cached ringing call holds it for the whole call: pydantic models cost
~0.5 - 1 KiB each with their ``__dict__`` and fields-set; issue 8).
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.activities import ResolvedPlan, Target
    from ringflow.contracts.common import Party
    from ringflow.contracts.policies import RingStrategy


@dataclass(frozen=True, slots=True)
class RingTarget:
    """One party to ring (a ``Target``'s fields)."""

    party: Party
    name: str
    auto_answer: bool = False

    @classmethod
    def of(cls, target: Target) -> RingTarget:
        return cls(target.party, target.name, target.auto_answer)


@dataclass(frozen=True, slots=True)
class Stage:
    """Targets rung together: one for sequential/round-robin, all for simultaneous."""

    targets: tuple[RingTarget, ...]
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
    """The stages of one building call and how far it got (``next()``), and what else the
    building call needs of the resolved plan: the caller's name and in-call actions, the
    unit's name, the strategy, ``record_media``, ``open_while_ringing``, every party it may
    ring."""

    __slots__ = (
        "callees",
        "caller_actions",
        "caller_name",
        "open_while_ringing",
        "position",
        "record_media",
        "site_id",
        "stages",
        "strategy",
        "unit_name",
    )

    def __init__(self, resolved: ResolvedPlan, default_ring_timeout_s: float) -> None:
        policy = resolved.policy
        ring = policy.ring_timeout_s or default_ring_timeout_s
        targets = tuple(RingTarget.of(t) for t in resolved.targets)
        stages: list[Stage] = []
        for rnd in range(1, policy.rounds + 1):
            if not targets:
                break
            if policy.strategy == RingStrategy.SIMULTANEOUS:
                stages.append(Stage(targets, rnd, False, ring))
            else:
                stages += [Stage((t,), rnd, False, ring) for t in targets]
        if resolved.fallback is not None:
            fallback_ring = policy.fallback_ring_timeout_s or ring
            stages.append(Stage((RingTarget.of(resolved.fallback),), 1, True, fallback_ring))
        self.stages = stages
        self.position = 0  # stages started so far
        self.caller_name = resolved.caller_name
        self.unit_name = resolved.unit_name
        self.strategy = policy.strategy
        self.record_media = policy.record_media
        self.open_while_ringing = policy.open_while_ringing  # in-call actions while ringing (issue 11)
        self.callees = resolved.callees()  # every party the plan may ring: targets, then fallback
        self.caller_actions = resolved.caller_actions  # the caller device's in-call actions
        self.site_id = resolved.site_id  # the site of the unit called (issue 9)

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

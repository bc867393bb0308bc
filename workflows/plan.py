"""``RingPlan``: the stages of a building call's ring plan (reference FAQ 1.5, "round-robin
calling"), from the resolved targets and the unit's policy. Pure: no I/O, no workflow calls.

Strategies: sequential and round_robin ring one target per stage, in the resolved order (the
round-robin rotation is applied when the targets are resolved); simultaneous rings every
target in one stage, first answer wins. ``rounds`` repeats the list; the fallback target
(concierge) is rung once after every round. Durations are seconds.

Re-planning (issue 10 item 3): :meth:`RingPlan.rebuild` replaces the stages not yet started
with those of a new resolution (the stage ringing is kept; the targets already rung in the
current round are not rung again in it), :meth:`RingPlan.exclude` drops a party that passed
from the stages not yet started.

The plan keeps what the building call needs of ``resolve_targets``' ``ResolvedPlan`` as
plain data in slots (a cached ringing call holds it for the whole call: pydantic models cost
~0.5 - 1 KiB each with their ``__dict__`` and fields-set; issue 8).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.activities import ResolvedPlan, Target
    from ringflow.contracts.common import Party
    from ringflow.contracts.policies import EscalationPolicy, RingStrategy


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
        "follow_up_window_s",
        "open_while_ringing",
        "passed",
        "position",
        "record_media",
        "remote_open_after_miss",
        "site_id",
        "stages",
        "strategy",
        "unit_name",
    )

    def __init__(self, resolved: ResolvedPlan, default_ring_timeout_s: float) -> None:
        policy = resolved.policy
        targets = tuple(RingTarget.of(t) for t in resolved.targets)
        self.stages = _stages(targets, policy, default_ring_timeout_s, 1, _fallback(resolved))
        self.position = 0  # stages started so far
        self.caller_name = resolved.caller_name
        self.unit_name = resolved.unit_name
        self.strategy = policy.strategy
        self.record_media = policy.record_media
        self.open_while_ringing = policy.open_while_ringing  # in-call actions while ringing (issue 11)
        self.callees = resolved.callees()  # every party the plan may ring: targets, then fallback
        self.caller_actions = resolved.caller_actions  # the caller device's in-call actions
        self.site_id = resolved.site_id  # the site of the unit called (issue 9)
        self.passed: tuple[Party, ...] = ()  # listeners who passed: never rung again (issue 10)
        # missed-call follow-up (issue 10 item 4): the policy's window (s, 0 = none), remote open
        self.follow_up_window_s = policy.follow_up_window_s or 0.0
        self.remote_open_after_miss = policy.remote_open_after_miss

    @property
    def current(self) -> Stage | None:
        """The stage started last (None before the first)."""
        return self.stages[self.position - 1] if self.position else None

    def remaining_parties(self) -> list[Party]:
        """The parties of the stages not yet started, in ring order, each once."""
        return _unique(t.party for st in self.stages[self.position :] for t in st.targets)

    def exclude(self, party: Party) -> None:
        """``party`` passed (issue 10 item 3): leave it out of every stage not yet started
        (a stage left empty is dropped) and out of any later rebuild."""
        if party not in self.passed:
            self.passed += (party,)
        rest = []
        for st in self.stages[self.position :]:
            kept = tuple(t for t in st.targets if t.party != party)
            if kept:
                rest.append(Stage(kept, st.round, st.fallback, st.ring_timeout_s))
        self.stages = self.stages[: self.position] + rest

    def rebuild(self, resolved: ResolvedPlan | None, default_ring_timeout_s: float) -> PlanChange:
        """Replace the stages not yet started by those of ``resolved`` (a new resolution of the
        same call, issue 10 item 3). The stage ringing is kept as it is (its timer too). What
        follows it: for sequential/round-robin the rest of the current round (the new order,
        without the targets already rung in this round), then the later rounds, then the
        fallback; for simultaneous the later rounds, then the fallback; nothing when the
        current stage is the fallback. Passed listeners stay out. ``resolved`` None (the unit
        or the caller is gone): nothing more is rung. Returns what changed."""
        before = self.remaining_parties()
        if resolved is None:
            cur = self.current
            self.stages = self.stages[: self.position]
            ring = cur.ring_timeout_s if cur else default_ring_timeout_s
            return PlanChange(added=(), removed=tuple(before), ring_timeout_s=ring, remaining=())
        policy = resolved.policy
        ring = policy.ring_timeout_s or default_ring_timeout_s
        targets = tuple(RingTarget.of(t) for t in resolved.targets if t.party not in self.passed)
        fallback = _fallback(resolved)
        if fallback is not None and fallback.party in self.passed:
            fallback = None
        cur = self.current
        if cur is None:
            rest = _stages(targets, policy, default_ring_timeout_s, 1, fallback)
        elif cur.fallback:
            rest = []
        else:
            rung = [
                t.party for st in self.stages[: self.position] if st.round == cur.round for t in st.targets
            ]
            rest = []
            if policy.strategy != RingStrategy.SIMULTANEOUS:
                rest = [Stage((t,), cur.round, False, ring) for t in targets if t.party not in rung]
            rest += _stages(targets, policy, default_ring_timeout_s, cur.round + 1, fallback)
        self.stages = self.stages[: self.position] + rest
        self.strategy = policy.strategy
        self.callees = _unique([*self.callees, *resolved.callees()])
        after = self.remaining_parties()
        return PlanChange(
            added=tuple(p for p in after if p not in before),
            removed=tuple(p for p in before if p not in after),
            ring_timeout_s=ring,
            remaining=tuple(after),
        )

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


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What :meth:`RingPlan.rebuild` changed in the stages not yet started: parties
    ``added`` and ``removed`` (in ring order), the new ``ring_timeout_s``, and the parties
    ``remaining`` to ring (the ``planChanged`` event's data, docs/events.md)."""

    added: tuple[Party, ...]
    removed: tuple[Party, ...]
    ring_timeout_s: float
    remaining: tuple[Party, ...]


def _fallback(resolved: ResolvedPlan) -> RingTarget | None:
    """The fallback target of ``resolved`` (None: no fallback)."""
    return None if resolved.fallback is None else RingTarget.of(resolved.fallback)


def _stages(
    targets: tuple[RingTarget, ...],
    policy: EscalationPolicy,
    default_ring_timeout_s: float,
    first_round: int,
    fallback: RingTarget | None,
) -> list[Stage]:
    """The stages of rounds ``first_round``..``policy.rounds`` over ``targets``, then the
    fallback (rung once, ``fallback_ring_timeout_s`` or the ring timeout)."""
    ring = policy.ring_timeout_s or default_ring_timeout_s
    stages: list[Stage] = []
    for rnd in range(first_round, policy.rounds + 1):
        if not targets:
            break
        if policy.strategy == RingStrategy.SIMULTANEOUS:
            stages.append(Stage(targets, rnd, False, ring))
        else:
            stages += [Stage((t,), rnd, False, ring) for t in targets]
    if fallback is not None:
        stages.append(Stage((fallback,), 1, True, policy.fallback_ring_timeout_s or ring))
    return stages


def _unique(parties: Iterable[Party]) -> list[Party]:
    out: list[Party] = []
    for p in parties:
        if p not in out:
            out.append(p)
    return out

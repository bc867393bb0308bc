"""Escalation policies: how a unit's residents are rung (reference FAQ 1.5, "round-robin calling").

The field's names: sequential (linear hunt: A, then B, then C), simultaneous
(ring all, first answer wins), round-robin with memory (start after whoever
answered last). Durations in seconds.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ringflow.contracts.availability import MAX_QUIET_HOURS, QuietHours, RingThroughDnd
from ringflow.contracts.common import Contract, Identifier


class RingStrategy(StrEnum):
    """Ring strategy of a unit's hunt group."""

    SEQUENTIAL = "sequential"
    SIMULTANEOUS = "simultaneous"
    ROUND_ROBIN = "round_robin"


class EscalationPolicy(Contract):
    """A unit's ring plan.

    - ``ring_timeout_s``: how long each target rings; None = the deployment's
      default (settings ``ring_timeout_s``, reference: 60 s). FAQ 1.5's example is 30 s.
    - ``rounds``: how many times the whole list is tried before the fallback (1-10).
    Targets that are busy, have not authorized the caller device, are away or are on
    do-not-disturb are always skipped at once, with the reason recorded.
    - ``fallback_user_id``: rung once when nobody answered (the concierge), with
      ``fallback_ring_timeout_s`` (None = ``ring_timeout_s``).
    - ``record_media``: record the call's media (issue: media bridge).
    - ``open_while_ringing``: a rung listener may ask the calling device for its in-call
      actions ("open door") from the incoming-call screen, before answering (issue 11 item
      3; ButterflyMX/2N-style one-tap open). Audited as the in-call action (``customAction``
      with ``while_ringing``). Off by default: the reference allows actions in talk only.
    - ``quiet_hours``: the unit's weekly quiet hours (issue 10; :class:`QuietHours`, in the
      site's time zone unless a rule names one): the unit's residents are in do-not-disturb
      then (skipped with errCode 1003, reason ``dnd: unit ... quiet hours ...``); the fallback
      is not a resident and is rung as usual (its own do-not-disturb applies).
    - ``ring_through_dnd``: callers that ring the unit's listeners (residents and fallback)
      even in do-not-disturb, e.g. ``{groups: [concierge-desk]}`` (:class:`RingThroughDnd`).
      Never through ``away`` or a busy line.
    Both are read from the unit's stored policy at each ring (``activities/directory.py``
    ``precall_checks``): a policy given with one call (``POST /v1/calls`` ``policy``) does not
    change them.
    - ``follow_up_window_s`` (issue 10 item 4): after a missed call (nobody answered, the
      caller did not give up), a resident who was rung may call the door back for this many
      seconds (a durable timer of the call); None/0 = no follow-up window.
    - ``remote_open_after_miss``: within that window a rung resident may also open the door
      remotely (audited as the call's in-call action ``open_door``, ``after_miss``).
    """

    strategy: RingStrategy = RingStrategy.SEQUENTIAL
    ring_timeout_s: float | None = Field(None, gt=0, le=3600)
    rounds: int = Field(1, ge=1, le=10)
    fallback_user_id: Identifier | None = None
    fallback_ring_timeout_s: float | None = Field(None, gt=0, le=3600)
    record_media: bool = False
    open_while_ringing: bool = False
    quiet_hours: list[QuietHours] = Field(default_factory=list, max_length=MAX_QUIET_HOURS)
    ring_through_dnd: RingThroughDnd | None = None
    # issue 10 item 4 (missed-call follow-up): keep these last
    follow_up_window_s: float | None = Field(None, ge=0, le=86400)
    remote_open_after_miss: bool = False

"""``BuildingCallWorkflow``: ONE workflow per building call (id = ``call_id``), the ring plan
over a unit's targets (reference FAQ 1.5, "round-robin calling"), every attempt a
:class:`~workflows.room.Room` held as state inside it.

First workflow task: the local activity ``start_call`` (``callStarted``, resolve the targets,
the plan row: one transaction), then the first room's ``ring`` (pre-call checks, line claim,
ringing record and push outbox: one transaction), both local activities, so the first
resident's phone rings before the task completes. Later steps are local activities too
(next ring, answer, finish); the media bridge is driven by regular activities.

Messages (names in ``ringflow.contracts.messages``), answered in place:
- updates ``answer``, ``reject``, ``hang_up``, ``force_hang_up`` -> ``ActionResult``;
  ``custom_action``, ``custom_action_ack`` -> ``CustomActionResult``. Validators raise the
  typed rejections ``NotAParty``, ``AnsweredByAnother``, ``CallNotActive``,
  ``UnknownAction``, ``UnknownActionId``, ``ActionSettled``. An update returns once its
  action took effect in the room.
- signals ``joined`` / ``join_failed`` / ``media_lost`` (``JoinInput``): media facts, routed
  by party (the caller's to every live room, a listener's to its room).
- query ``status`` -> ``CallStatus``.

Issue 10 (re-planning, missed-call follow-up):
- update ``pass`` (``PassInput``): a rung listener says "skip me, move on now": its room ends
  with ``passVoip`` and the listener is left out of the stages not yet started. Sequential:
  the plan moves on at once. Ring-all: that listener stops ringing, the stage goes on for the
  others; when it was the last one ringing, the plan moves on.
- signal ``plan_changed`` (``PlanChangedInput``, from ``api/replan.py``): while the plan
  rings, the next loop turn of ``_ring_plan`` re-resolves the targets with the local activity
  ``replan`` (its result is in history: deterministic), keeps the stage ringing, rebuilds the
  stages after it (``RingPlan.rebuild``) and records ``planChanged``. A change that lands in
  the same workflow task as a ring timeout is applied BEFORE the next stage is chosen, so that
  stage already comes from the rebuilt plan (whatever the order of the two in the task).
- a missed call (nobody answered, not cancelled, someone was rung; behind the patch
  ``PATCH_FOLLOW_UP``): the visitor snapshot is stored with the call (activity
  ``store_snapshot``, before the media room closes), every rung resident gets a
  ``missed_call`` push with ``callEnded``, and with the policy's ``follow_up_window_s`` the
  workflow stays open that long (a durable timer) for the updates ``call_back`` ->
  ``CallBackResult`` and ``open_door`` -> ``CustomActionResult`` (policy
  ``remote_open_after_miss``); outside the window they are rejected with ``FollowUpClosed``.

Durations are seconds. ``docs/events.md`` is the table of events.

Memory: a worker keeps every ringing call cached (issue 8: <= 100 KiB of worker RSS per
ringing call), so the state kept between events is plain data in slots: of the activities'
pydantic results only what is read back is kept (``RingPlan``, ``AttemptState``), in-call
actions are set up on the first one. What a cached call costs beyond that is the SDK's and
the Temporal core's own per run (the input, two tasks each waiting on a condition, the
timer and its summary, the local activities' state, the start's memo), measured by
``python -m bench.workflow_memory --workload call,probe``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.calls import CallActivities
    from activities.directory import DirectoryActivities
    from ringflow.contracts.activities import (
        CallRecord,
        RecordInput,
        RememberAnswerInput,
        ResolveInput,
        StartCallInput,
    )
    from ringflow.contracts.calls import (
        STORE_SNAPSHOT,
        ActionResult,
        AnswerInput,
        AttemptOutcome,
        CallBackResult,
        CallStatus,
        CustomActionAck,
        CustomActionInput,
        CustomActionResult,
        EscalationInput,
        EscalationResult,
        FollowUpInput,
        ForceHangUpInput,
        HangUpInput,
        JoinInput,
        PassInput,
        Phase,
        PlanChangedInput,
        RejectInput,
    )
    from ringflow.contracts.common import Party
    from ringflow.contracts.errors import ErrCode
    from ringflow.contracts.events import CallEvent, EventName
    from ringflow.contracts.media import MEDIA_CLOSE_ROOM, BridgeLostInput, RoomStats
    from ringflow.contracts.messages import Query, Rejection, Signal, Update, WorkflowType, rejection
    from ringflow.contracts.policies import RingStrategy
    from ringflow.contracts.push import PushMessage, PushType
    from ringflow.contracts.tenancy import DEFAULT_SITE, unqualified
    from workflows.actions import InCallActions
    from workflows.events import (
        ACTIVITY_TIMEOUT,
        MEDIA_RETRY,
        RECORD_TIMEOUT,
        RETRY,
        CallLog,
        record_local,
        seconds,
    )
    from workflows.metrics import CallMetrics
    from workflows.plan import PlanChange, RingPlan, RingTarget, Stage
    from workflows.room import MEDIA_MESSAGES, AttemptState, Room, RoomMessage, RoomSpec
    from workflows.visibility import CallVisibility

INITIATE_FAILED = "initiateFailed"
"""End reason of a building call that rang nobody: no targets, or every target failed a
pre-call check (section 1); ``err_code`` says why."""
ANSWERED_BY_ANOTHER = "answered by another"
"""``cancelVoip`` reason of the rooms that lost a ring-all race."""
CANCELLED_REASON = "building call cancelled"
"""``cancelVoip``/``hangUpVoip`` reason when the workflow itself is cancelled."""

_ERR_CODES = {EventName.TIMEOUT: None, EventName.BUSY: ErrCode.LISTENER_BUSY}

PATCH_FOLLOW_UP = "missed-call-follow-up"
"""``workflow.patched`` id (issue 10 item 4): a missed call stores its snapshot, pushes
``missed_call`` and keeps its follow-up window; calls that missed before it end as before."""
FOLLOW_UP_ACTION = "open_door"
"""The door action a resident may ask for after a miss (the device must offer it)."""


@dataclass(slots=True)
class Stop:
    """Why the ringing stopped before an answer: the message every live room gets."""

    kind: RoomMessage
    party: Party | None = None
    reason: str | None = None


@dataclass(slots=True)
class CallState:
    """The whole state of one building call (samples-python ``safe_message_handlers``)."""

    phase: Phase = Phase.INITIATE
    strategy: RingStrategy = RingStrategy.SEQUENTIAL
    plan: RingPlan | None = None  # from the resolved targets
    rooms: dict[str, Room] = field(default_factory=dict)  # by room_id, in attempt order
    answered_by: Party | None = None  # claimed by the answer update (first wins)
    answer_room: str | None = None
    talk_started_at: datetime | None = None
    stop: Stop | None = None  # the ringing was stopped (caller gave up, force, caller media)
    ring_done: bool = False  # no further room will be opened
    caller_joined: bool = False  # the caller's media is in the call's media room
    failure: Exception | None = None  # a room's task failed (a bug): fails the workflow task
    replan: list[str] = field(default_factory=list)  # plan_changed signals not yet applied
    follow_up_until: datetime | None = None  # a missed call's follow-up window (issue 10)
    follow_up_open: bool = False  # call_back / open_door are accepted now
    call_backs: int = 0  # call_back updates accepted (the new calls' ids count them)


@workflow.defn(name=WorkflowType.BUILDING_CALL)
class BuildingCallWorkflow:
    """One building call: ``run(EscalationInput) -> EscalationResult``; see the module docstring."""

    __slots__ = ("_acts", "_inp", "_log", "_metrics", "_s", "_vis")

    @workflow.init
    def __init__(self, inp: EscalationInput) -> None:
        self._inp = inp
        self._s = CallState(strategy=inp.policy.strategy if inp.policy else RingStrategy.SEQUENTIAL)
        self._log = CallLog(inp.call_id)
        self._vis = CallVisibility()
        self._metrics = CallMetrics()  # docs/metrics.md
        self._acts: InCallActions | None = None  # set up by the first in-call action

    @property
    def _actions(self) -> InCallActions:
        """The call's in-call actions (made on first use: most calls have none)."""
        if self._acts is None:
            inp = self._inp
            self._acts = InCallActions(inp.call_id, inp.caller, self._log, inp.action_ack_timeout_s)
        return self._acts

    def _actions_recorded(self) -> bool:
        """Every in-call action's result is written (none is waiting)."""
        return self._acts is None or self._acts.all_recorded()

    # ------------------------------------------------------------------ query / signals

    @workflow.query(name=Query.STATUS)
    def status(self) -> CallStatus:
        """The live call: phase, who is ringing, who answered, the attempts."""
        s = self._s
        talk = self._talk_room()
        return CallStatus(
            call_id=self._inp.call_id,
            phase=s.phase,
            strategy=s.strategy,
            ringing=[r.listener for r in s.rooms.values() if r.phase == Phase.WAIT],
            answered_by=s.answered_by if talk else None,
            talk_room_id=talk.spec.room_id if talk else None,
            talk_started_at=s.talk_started_at,
            attempts=[r.attempt for r in s.rooms.values()],
            follow_up_until=s.follow_up_until if s.follow_up_open else None,
        )

    @workflow.signal(name=Signal.JOINED)
    def joined(self, inp: JoinInput) -> None:
        """Media bridge: ``party`` joined the call's media room (docs/media.md)."""
        self._media(RoomMessage.JOINED, inp)

    @workflow.signal(name=Signal.JOIN_FAILED)
    def join_failed(self, inp: JoinInput) -> None:
        """Media bridge: ``party`` could not join the call's media room."""
        self._media(RoomMessage.JOIN_FAILED, inp)

    @workflow.signal(name=Signal.MEDIA_LOST)
    def media_lost(self, inp: JoinInput) -> None:
        """Media bridge: ``party``'s media vanished (abortVoip, troubleshooting guide 3(1), 6(1))."""
        self._media(RoomMessage.MEDIA_LOST, inp)

    @workflow.signal(name=Signal.MEDIA_BRIDGE_LOST)
    def media_bridge_lost(self, inp: BridgeLostInput) -> None:
        """The bridge process/node holding the media room died (issue 13): every live room
        re-offers its parties (``workflows/media_failover.py``)."""
        for room in self._live_rooms():
            room.post(RoomMessage.BRIDGE_LOST, reason=inp.node)

    @workflow.signal(name=Signal.PLAN_CHANGED)
    def plan_changed(self, inp: PlanChangedInput) -> None:
        """The directory or a policy changed under this call (``api/replan.py``): re-resolve
        the targets not yet rung at the plan's next turn; ignored once nobody more will be
        rung (answered, stopped, plan over)."""
        s = self._s
        if not s.ring_done and s.answered_by is None and s.stop is None and len(s.replan) < 20:
            s.replan.append(inp.what)

    def _media(self, kind: RoomMessage, inp: JoinInput) -> None:
        """Route a media fact by party (one media room per building call, docs/media.md): the
        caller's to every live room (remembered for rooms still to come; a caller whose media
        failed or vanished stops the plan), a listener's to that listener's live room."""
        s = self._s
        if inp.party == self._inp.caller:
            s.caller_joined = kind == RoomMessage.JOINED
            if not s.caller_joined and s.stop is None and s.phase != Phase.TALK:
                s.stop = Stop(kind, inp.party, inp.error)
            for room in self._live_rooms():
                room.post(kind, inp.party, inp.error)
            return
        for room in self._live_rooms():
            if room.listener == inp.party:
                room.post(kind, inp.party, inp.error)

    # ------------------------------------------------------------------ updates

    @workflow.update(name=Update.ANSWER)
    async def answer(self, inp: AnswerInput) -> ActionResult:
        """A rung listener answers. Returns once the room is in join/talk (``event`` answered);
        the same listener answering again while its room is live gets the same result.
        Rejections: ``AnsweredByAnother``, ``CallNotActive`` (not ringing you, or the ring
        ended before the answer reached the room), ``NotAParty``."""
        s = self._s
        room = self._own_answer(inp.party)  # a retried answer (its response was lost)
        if room is None:
            room = self._ringing_room(inp.party)  # again: an earlier answer may have won meanwhile
            s.answered_by, s.answer_room = inp.party, room.spec.room_id
            room.post(RoomMessage.ANSWER, inp.party)
            await self._until(lambda: room.confirmed or room.ended)
            if not room.confirmed:
                s.answered_by = s.answer_room = None
                raise rejection(Rejection.CALL_NOT_ACTIVE, "the call stopped ringing before the answer")
        return ActionResult(
            call_id=self._inp.call_id, room_id=room.spec.room_id, phase=room.phase, event=EventName.ANSWERED
        )

    @answer.validator
    def _validate_answer(self, inp: AnswerInput) -> None:
        if self._own_answer(inp.party) is None:
            self._ringing_room(inp.party)

    @workflow.update(name=Update.REJECT)
    async def reject(self, inp: RejectInput) -> ActionResult:
        """A rung listener declines: its room ends with ``rejectVoip`` (the plan goes on).
        Rejections: ``CallNotActive`` (not ringing you), ``NotAParty``."""
        room = self._ringing_room(inp.party, answering=False)
        room.post(RoomMessage.REJECT, inp.party)
        return await self._after(room)

    @reject.validator
    def _validate_reject(self, inp: RejectInput) -> None:
        self._ringing_room(inp.party, answering=False)

    @workflow.update(name=Update.PASS)
    async def pass_turn(self, inp: PassInput) -> ActionResult:
        """A rung listener passes (issue 10 item 3): its room ends with ``passVoip``, it is left
        out of every stage not yet started, and the plan moves on once its stage has nobody
        else ringing (at once for sequential). Rejections: ``CallNotActive`` (not ringing you),
        ``NotAParty``."""
        room = self._ringing_room(inp.party, answering=False)
        room.post(RoomMessage.PASS, inp.party)
        if self._s.plan is not None:
            self._s.plan.exclude(inp.party)
        return await self._after(room)

    @pass_turn.validator
    def _validate_pass(self, inp: PassInput) -> None:
        self._ringing_room(inp.party, answering=False)

    @workflow.update(name=Update.CALL_BACK)
    async def call_back(self, inp: FollowUpInput) -> CallBackResult:
        """A resident rung by this missed call calls the door back inside the follow-up window
        (issue 10 item 4): records ``callBack`` (data: the new call's id, the door) and returns
        the id the API starts the new call under (``"<call_id>-cb<n>"``, the caller -> the
        door). Rejections: ``NotAParty`` (not rung by this call), ``FollowUpClosed``."""
        room = self._follow_up_room(inp.party)
        s, inp_ = self._s, self._inp
        s.call_backs += 1
        new_call_id = f"{unqualified(inp_.call_id)[:118]}-cb{s.call_backs}"
        ev = self._log.event(
            EventName.CALL_BACK,
            party=inp.party,
            listener=inp_.caller,
            data={"new_call_id": new_call_id, "door": inp_.caller.key(), "room_id": room.spec.room_id},
        )
        await record_local(RecordInput(events=[ev]), f"record callBack by {room.spec.listener_name}")
        return CallBackResult(call_id=inp_.call_id, new_call_id=new_call_id, door=inp_.caller)

    @call_back.validator
    def _validate_call_back(self, inp: FollowUpInput) -> None:
        self._follow_up_room(inp.party)

    @workflow.update(name=Update.OPEN_DOOR)
    async def open_door(self, inp: FollowUpInput) -> CustomActionResult:
        """A resident rung by this missed call opens the door remotely inside the follow-up
        window, when the policy's ``remote_open_after_miss`` allows it: this call's in-call
        action ``open_door`` (``customAction`` ``after_miss``, acked by the device as in talk).
        Rejections: ``NotAParty``, ``FollowUpClosed``, ``FollowUpNotAllowed``, ``UnknownAction``."""
        room = self._open_door_room(inp.party)
        return await self._actions.request_after_miss(
            room.spec.room_id, room.spec.listener_name, inp.party, FOLLOW_UP_ACTION
        )

    @open_door.validator
    def _validate_open_door(self, inp: FollowUpInput) -> None:
        self._open_door_room(inp.party)

    @workflow.update(name=Update.HANG_UP)
    async def hang_up(self, inp: HangUpInput) -> ActionResult:
        """A party hangs up (troubleshooting guide 3, 5, 6): the caller before talk cancels the
        whole call (``cancelVoip`` in every ringing room); a rung listener declines
        (``rejectVoip``); either party in talk ends it (``hangUpVoip``).
        Rejections: ``CallNotActive`` (call over / nothing of yours is live), ``NotAParty``."""
        room = self._hang_up_room(inp.party)
        if room is None:
            return await self._stop_ringing(Stop(RoomMessage.HANG_UP, inp.party))
        room.post(RoomMessage.HANG_UP, inp.party)
        return await self._after(room)

    @hang_up.validator
    def _validate_hang_up(self, inp: HangUpInput) -> None:
        self._hang_up_room(inp.party)

    @workflow.update(name=Update.FORCE_HANG_UP)
    async def force_hang_up(self, inp: ForceHangUpInput) -> ActionResult:
        """The backend ends the call (``forceHangUpVoip``): every live room ends with
        ``cancelVoip``/``rejectVoip``/``hangUpVoip`` by its phase. Rejection: ``CallNotActive``."""
        room = self._talk_room()
        if room is None:
            return await self._stop_ringing(Stop(RoomMessage.FORCE_HANG_UP, reason=inp.reason))
        room.post(RoomMessage.FORCE_HANG_UP, reason=inp.reason)
        return await self._after(room)

    @force_hang_up.validator
    def _validate_force(self, inp: ForceHangUpInput) -> None:
        self._check_active()

    @workflow.update(name=Update.CUSTOM_ACTION)
    async def custom_action(self, inp: CustomActionInput) -> CustomActionResult:
        """The listener in talk asks the calling device for ``inp.action`` (reference FAQ 1.2,
        ``setCustomBtnText``: "open door"); returns the settled result (``InCallActions``).
        With the policy's ``open_while_ringing`` a listener being rung may ask too, before
        anyone answered (issue 11 item 3). Rejections: ``NotAParty``, ``CallNotActive`` (not
        in talk, nor ringing where allowed), ``UnknownAction`` (the device does not offer it)."""
        room = self._talk_room_for_action(inp)
        return await self._actions.request(
            room, inp.party, inp.action, while_ringing=room.phase != Phase.TALK
        )

    @custom_action.validator
    def _validate_custom_action(self, inp: CustomActionInput) -> None:
        self._talk_room_for_action(inp)

    @workflow.update(name=Update.CUSTOM_ACTION_ACK)
    async def custom_action_ack(self, inp: CustomActionAck) -> CustomActionResult:
        """The calling device acknowledges in-call action ``inp.action_id`` (``ok`` -> done,
        else failed). Rejections: ``NotAParty``, ``UnknownActionId``, ``ActionSettled``."""
        return await self._actions.acknowledge(inp)

    @custom_action_ack.validator
    def _validate_custom_action_ack(self, inp: CustomActionAck) -> None:
        self._actions.pending(inp)

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: EscalationInput) -> EscalationResult:
        """Ring the plan, follow the answered room to its end, record the outcome."""
        self._metrics.started()
        self._vis.started(inp.caller.key(), inp.unit_id, Phase.INITIATE)
        self._vis.flush()
        self._vis.details(self._header("resolving targets"))
        cancelled = False
        try:
            failure = await self._start()
            if failure is not None:
                return await self._end(*failure)
            await self._ring_plan()
            self._s.ring_done = True
            await self._follow_answer()
            await self._until(lambda: all(r.ended for r in self._s.rooms.values()))
        except asyncio.CancelledError:
            cancelled = True
            self._s.ring_done = True
            self._stop_all(Stop(RoomMessage.CANCEL, reason=CANCELLED_REASON))
            await self._until(lambda: all(r.ended for r in self._s.rooms.values()))
        result = await self._end(*self._outcome(cancelled))
        if cancelled:
            raise asyncio.CancelledError(CANCELLED_REASON)
        return result

    async def _start(self) -> tuple[str, ErrCode, str] | None:
        """Local activity ``start_call`` (one transaction: the call row and ``callStarted``,
        ``resolve_targets``, the plan with phase wait); returns (end_reason, err_code, reason)
        when nobody can be rung. A cancellation while it runs waits for what was written."""
        inp = self._inp
        started = RecordInput(
            call=CallRecord(
                call_id=inp.call_id,
                caller=inp.caller,
                unit_id=inp.unit_id,
                room_type=inp.room_type,
                strategy=inp.policy.strategy if inp.policy else None,
                phase=Phase.INITIATE,
                started_at=workflow.now(),
                callees=inp.callees,
            ),
            events=[
                self._log.event(
                    EventName.CALL_STARTED,
                    party=inp.caller,
                    data={
                        "unit_id": inp.unit_id,
                        "room_type": inp.room_type.value,
                        "strategy": self._s.strategy.value,
                    },
                )
            ],
        )
        start = asyncio.create_task(
            workflow.execute_local_activity_method(
                CallActivities.start_call,
                StartCallInput(call_id=inp.call_id, resolve=self._resolve_input(), started=started),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RETRY,
                summary=f"record callStarted, resolve targets of {self._target_label()}",
            )
        )
        try:
            res = await asyncio.shield(start)
        except asyncio.CancelledError:
            await start
            raise
        if res.plan is None:
            kind = res.error_type or ""
            code = ErrCode.UNKNOWN_RESOURCE if kind.startswith("Unknown") else ErrCode.NO_TARGETS
            return INITIATE_FAILED, code, f"{res.error_type}: {res.error_message}"
        self._s.plan = plan = RingPlan(res.plan, inp.default_ring_timeout_s)
        self._s.strategy = plan.strategy
        callees = plan.callees
        self._vis.callees([p.key() for p in callees])
        if not callees:
            self._vis.flush()
            return INITIATE_FAILED, ErrCode.NO_TARGETS, "nobody may be called from this device"
        self._set_phase(Phase.WAIT)
        return None

    def _resolve_input(self) -> ResolveInput:
        """What ``start_call`` and ``replan`` resolve: this call's caller, unit or callees,
        policy override, tenant and site."""
        inp = self._inp
        return ResolveInput(
            caller=inp.caller,
            unit_id=inp.unit_id,
            callees=inp.callees,
            policy=inp.policy,
            tenant_id=inp.tenant_id,
            site_id=inp.site_id,
        )

    async def _ring_plan(self) -> None:
        """Ring stage after stage until an answer is confirmed, the ringing is stopped, or the
        plan is exhausted (FAQ 1.5); first answer wins."""
        s = self._s
        assert s.plan is not None
        plan = s.plan
        while s.stop is None:
            if s.replan:  # issue 10: a change applies before the next stage is chosen
                await self._replan()
            if s.stop is not None or (stage := plan.next()) is None:
                break
            lead_in = () if plan.previous is None else (self._escalated(plan.previous, stage),)
            total = len(plan.stages)
            rooms = [
                self._open_room(t, stage, plan.position, total, lead_in if i == 0 else ())
                for i, t in enumerate(stage.targets)
            ]
            while True:
                await self._until(
                    lambda rs=rooms: (
                        self._talk_room() is not None or all(r.ended for r in rs) or bool(s.replan)
                    )
                )
                answered = self._talk_room()
                if answered is not None:
                    await self._on_answered(answered)
                    return
                if all(r.ended for r in rooms):
                    break
                await self._replan()  # while the stage rings: its rooms and timers are kept

    async def _replan(self) -> None:
        """Apply the pending ``plan_changed`` signals (issue 10 item 3): the local activity
        ``replan`` re-resolves the call's targets (its result is in history), the stages not
        yet started are rebuilt from it (``RingPlan.rebuild``; a unit that is gone leaves
        nothing more to ring), and ``planChanged`` is recorded with what changed."""
        inp, s = self._inp, self._s
        assert s.plan is not None
        what, s.replan = s.replan, []
        res = await workflow.execute_local_activity_method(
            CallActivities.replan,
            self._resolve_input(),
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
            summary=f"re-resolve the targets of {self._target_label()} ({'; '.join(what)})"[:200],
        )
        change: PlanChange = s.plan.rebuild(res.plan, inp.default_ring_timeout_s)
        data: dict[str, Any] = {
            "what": what,
            "added": [p.key() for p in change.added],
            "removed": [p.key() for p in change.removed],
            "ring_timeout_s": change.ring_timeout_s,
            "remaining": [p.key() for p in change.remaining],
        }
        if res.plan is None:
            data["error"] = f"{res.error_type}: {res.error_message}"
        ev = self._log.event(EventName.PLAN_CHANGED, reason="; ".join(what)[:200], data=data)
        await record_local(RecordInput(events=[ev]), "record planChanged")
        if change.added:
            self._vis.callees([p.key() for p in s.plan.callees])
            self._vis.flush()

    def _open_room(
        self, target: RingTarget, stage: Stage, n: int, total: int, lead_in: tuple[CallEvent, ...]
    ) -> Room:
        """Open the next attempt's room and run it as a task of this workflow; ``lead_in``
        (``escalated``) is written in the same transaction as its ring."""
        inp, s = self._inp, self._s
        assert s.plan is not None
        seq = len(s.rooms) + 1
        room_id = f"{inp.call_id}.{seq}"
        attempt = AttemptState(
            room_id=room_id,
            seq=seq,
            round=stage.round,
            listener=target.party,
            listener_name=target.name,
            fallback=stage.fallback,
        )
        spec = RoomSpec(
            call_id=inp.call_id,
            room_id=room_id,
            caller=inp.caller,
            caller_name=s.plan.caller_name,
            listener=target.party,
            listener_name=target.name,
            room_type=inp.room_type,
            ring_timeout_s=stage.ring_timeout_s,
            join_timeout_s=inp.join_timeout_s,
            time_limit_s=inp.time_limit_s,
            media_required=inp.media_required,
            caller_joined=s.caller_joined,
            listener_auto_answer=target.auto_answer,
            record_media=s.plan.record_media,
            lead_in=lead_in,
            ringing_actions=tuple(s.plan.caller_actions) if s.plan.open_while_ringing else (),
            more_targets=inp.unit_id is not None and (n < len(s.plan.stages) or len(stage.targets) > 1),
        )
        room = s.rooms[room_id] = Room(spec, attempt, self._vis, s, self._metrics)
        what = "fallback " if stage.fallback else ""
        self._vis.details(self._header(f"ringing {what}stage {n}/{total}, round {stage.round}"))
        # A bug in the room puts its exception in s.failure: it fails the workflow task, not the call.
        asyncio.create_task(room.run())  # noqa: RUF006 -- awaited through room.ended / s.failure
        return room

    def _escalated(self, prev: Stage, nxt: Stage) -> CallEvent:
        """The ``escalated`` event between two stages (next target / next round / fallback),
        written by the next stage's first ring."""
        return self._log.event(
            EventName.ESCALATED,
            listener=nxt.targets[0].party if len(nxt.targets) == 1 else None,
            reason=nxt.escalation_reason(prev),
            data={"to": [t.party.key() for t in nxt.targets], "round": nxt.round},
        )

    async def _on_answered(self, room: Room) -> None:
        """First answer wins: cancel the other rooms, remember the answer (round-robin)."""
        inp, s = self._inp, self._s
        assert s.plan is not None and s.answered_by is not None
        for other in self._live_rooms():
            if other is not room:
                other.post(RoomMessage.CANCEL, reason=ANSWERED_BY_ANOTHER)
        self._vis.answered_by(s.answered_by.key())
        self._set_phase(room.phase)
        self._vis.details(self._header(f"answered by {room.spec.listener_name}"))
        if s.plan.strategy == RingStrategy.ROUND_ROBIN and inp.unit_id:
            await workflow.execute_local_activity_method(
                DirectoryActivities.remember_answer,
                RememberAnswerInput(
                    unit_id=inp.unit_id,
                    party=s.answered_by,
                    tenant_id=inp.tenant_id,
                    site_id=s.plan.site_id or DEFAULT_SITE,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                summary=f"remember {s.answered_by.key()} answered {inp.unit_id}",
            )

    async def _follow_answer(self) -> None:
        """Mirror the answered room's phases (join, talk) as the building call's until it ends."""
        room = self._talk_room()
        while room is not None and not room.ended:
            seen = room.phase
            if seen in (Phase.JOIN, Phase.TALK):
                if seen == Phase.TALK and self._s.talk_started_at is None:
                    self._s.talk_started_at = room.talk_started_at
                self._set_phase(seen)
            await self._until(lambda seen=seen: room.phase != seen)
        if room is not None:
            self._s.phase = Phase.FINISH

    # ------------------------------------------------------------------ stopping

    async def _stop_ringing(self, stop: Stop) -> ActionResult:
        """Caller cancel / force before an answer: stop the plan, end every live room."""
        self._stop_all(stop)
        await self._until(lambda: self._s.ring_done and all(r.ended for r in self._s.rooms.values()))
        return ActionResult(call_id=self._inp.call_id, phase=self._s.phase, event=EventName.CANCEL_VOIP)

    def _stop_all(self, stop: Stop) -> None:
        if self._s.stop is None:
            self._s.stop = stop
        for room in self._live_rooms():
            room.post(stop.kind, stop.party, stop.reason)

    async def _after(self, room: Room) -> ActionResult:
        """Wait until ``room`` ended; the action's result."""
        await self._until(lambda: room.ended)
        return ActionResult(
            call_id=self._inp.call_id,
            room_id=room.spec.room_id,
            phase=self._s.phase,
            event=room.state.end_reason,
        )

    # ------------------------------------------------------------------ ending

    def _outcome(self, cancelled: bool) -> tuple[str, ErrCode | None, str | None]:
        """(end_reason, err_code, reason) of the building call (docs/events.md)."""
        s = self._s
        talk = self._talk_room()
        if talk is not None:
            return (talk.state.end_reason or EventName.HANG_UP_VOIP).value, None, talk.state.reason
        if cancelled or (s.stop is not None and s.stop.kind not in MEDIA_MESSAGES):
            return EventName.CANCEL_VOIP.value, None, "call cancelled"
        atts = [r.state for r in s.rooms.values()]
        if atts and all(a.outcome == AttemptOutcome.SKIPPED for a in atts):
            return INITIATE_FAILED, atts[-1].err_code, atts[-1].reason
        reasons = {a.end_reason for a in atts if a.outcome != AttemptOutcome.SKIPPED}
        if len(reasons) == 1:
            only = reasons.pop()
            if only is not None and only != EventName.CANCEL_VOIP:
                return only.value, _ERR_CODES.get(only), None
        return EventName.TIMEOUT.value, None, "nobody answered"

    async def _end(self, end_reason: str, err_code: ErrCode | None, reason: str | None) -> EscalationResult:
        """Settle in-call actions, close the media room, record ``callEnded`` and the final
        call row (one local activity); the result."""
        inp, s = self._inp, self._s
        s.ring_done = True
        talk = self._talk_room()
        answered_by = talk.listener if talk else None
        keep = (talk.state.keep_time_s or 0) if talk else 0
        self._vis.end_reason(end_reason)
        self._metrics.ended(end_reason)
        self._set_phase(Phase.ENDED)
        self._vis.details(self._header(f"ended: {end_reason}" + (f", keepTime {keep} s" if talk else "")))
        # In-call actions still waiting settle now that the talk is over: their
        # customActionResult comes before callEnded.
        await self._until(self._actions_recorded)
        data: dict[str, Any] = {"end_reason": end_reason}
        missed = [r for r in s.rooms.values() if r.rang] if self._missed(end_reason, talk) else []
        follow = bool(missed) and workflow.patched(PATCH_FOLLOW_UP)
        window = s.plan.follow_up_window_s if follow and s.plan is not None else 0.0
        if follow:
            # before the media room closes: the bridge keeps the snapshot with the room
            data["snapshot"] = inp.media_required and await self._store_snapshot()
            if window > 0:
                s.follow_up_until = workflow.now() + timedelta(seconds=window)
                data["follow_up_until"] = s.follow_up_until.isoformat()
        if inp.media_required:
            data |= await self._close_media()
        ended = self._log.event(
            EventName.CALL_ENDED,
            party=answered_by,
            err_code=err_code,
            keep_time_s=keep,
            reason=reason,
            data=data,
        )
        finished = {
            "end_reason": end_reason,
            "err_code": int(err_code) if err_code is not None else None,
            "keepTime": keep,
            "answered_by": answered_by.key() if answered_by else None,
        }
        pushes = [self._log.push(ended, inp.caller, PushType.CALL_FINISHED, finished)]
        if follow:
            pushes += self._missed_pushes(ended, missed, bool(data["snapshot"]))
        await record_local(
            RecordInput(
                call=CallRecord(
                    call_id=inp.call_id,
                    phase=Phase.ENDED,
                    ended_at=workflow.now(),
                    answered_by=answered_by,
                    end_reason=end_reason,
                    err_code=err_code,
                    keep_time_s=keep,
                    follow_up_until=s.follow_up_until,
                ),
                events=[ended],
                pushes=pushes,
            ),
            f"record callEnded ({end_reason})",
        )
        if s.follow_up_until is not None:
            await self._follow_up_window(window)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return EscalationResult(
            call_id=inp.call_id,
            answered_by=answered_by,
            end_reason=end_reason,
            err_code=err_code,
            keep_time_s=keep,
            attempts=[r.attempt for r in s.rooms.values()],
        )

    def _missed(self, end_reason: str, talk: Room | None) -> bool:
        """Nobody answered and nobody gave up (issue 10 item 4: the follow-up's trigger): no
        talk, the end reason is not ``cancelVoip`` (caller, backend, cancellation) nor
        ``initiateFailed``."""
        return talk is None and end_reason not in (EventName.CANCEL_VOIP.value, INITIATE_FAILED)

    def _missed_pushes(self, ended: CallEvent, rooms: list[Room], snapshot: bool) -> list[PushMessage]:
        """One ``missed_call`` push per rung listener (issue 10 item 4), caused by ``callEnded``:
        who called, the snapshot link (the resident app's ``/v1/me/calls/{id}/snapshot.jpg``)
        and the follow-up window with its routes."""
        inp, s = self._inp, self._s
        own = unqualified(inp.call_id)
        base = f"/v1/me/calls/{own}"
        payload: dict[str, Any] = {
            "call_id": own,
            "caller": inp.caller.key(),
            "caller_name": s.plan.caller_name if s.plan else inp.caller.key(),
            "unit_id": inp.unit_id,
            "snapshot_url": f"{base}/snapshot.jpg" if snapshot else None,
            "follow_up_until": s.follow_up_until.isoformat() if s.follow_up_until else None,
        }
        if s.follow_up_until is not None:
            payload["call_back_url"] = f"{base}/call-back"
            if s.plan is not None and s.plan.remote_open_after_miss:
                payload["open_door_url"] = f"{base}/open-door"
        out: list[PushMessage] = []
        for room in rooms:
            if all(p.recipient != room.listener for p in out):
                out.append(self._log.push(ended, room.listener, PushType.MISSED_CALL, payload))
        return out

    async def _store_snapshot(self) -> bool:
        """Activity ``store_snapshot``: the media bridge's visitor snapshot of this call, stored
        with the call in PostgreSQL (issue 10 item 4); False when there is none or the bridge
        cannot be reached (logged: the follow-up goes on without a picture)."""
        try:
            stored: bool = await workflow.execute_activity(
                STORE_SNAPSHOT,
                self._inp.call_id,
                result_type=bool,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=MEDIA_RETRY,
                summary="store the visitor snapshot with the call",
            )
        except ActivityError as e:
            workflow.logger.warning("storing the snapshot of %s failed: %s", self._inp.call_id, e)
            return False
        return stored

    async def _follow_up_window(self, window_s: float) -> None:
        """Keep the missed call open for ``window_s`` (a durable timer): ``call_back`` and
        ``open_door`` are accepted meanwhile. A cancellation closes the window early. Then
        every in-call action it started settles."""
        s = self._s
        s.follow_up_open = True
        try:
            await workflow.sleep(window_s, summary=f"follow-up window ({seconds(window_s)})")
        except asyncio.CancelledError:
            workflow.logger.info("follow-up window of %s closed by a cancellation", self._inp.call_id)
        s.follow_up_open = False
        await self._until(self._actions_recorded)

    async def _close_media(self) -> dict[str, Any]:
        """Close the call's media room (docs/media.md); ``{"traffic": [PartyTraffic...],
        "recording": path}`` for ``callEnded``, or ``{}`` when the bridge had no room or could
        not be reached (logged: the bridge closes the room itself once this workflow ends)."""
        try:
            stats: RoomStats | None = await workflow.execute_activity(
                MEDIA_CLOSE_ROOM,
                self._inp.call_id,
                result_type=RoomStats | None,  # type: ignore[arg-type]
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=MEDIA_RETRY,
                summary="media: close the room, collect its traffic",
            )
        except ActivityError as e:
            workflow.logger.warning("closing media room %s failed: %s", self._inp.call_id, e)
            return {}
        if stats is None:
            return {}
        return {"traffic": [t.model_dump(mode="json") for t in stats.parties], "recording": stats.recording}

    # ------------------------------------------------------------------ helpers

    async def _until(self, pred: Any) -> None:
        """``wait_condition(pred)``; re-raises a room task's failure (a bug) so that the
        workflow task fails and is retried, as an exception in workflow code does."""
        s = self._s
        await workflow.wait_condition(lambda: s.failure is not None or pred())
        if s.failure is not None:
            raise s.failure

    def _talk_room(self) -> Room | None:
        """The answered room once its answer is recorded (join, talk or after)."""
        s = self._s
        room = s.rooms.get(s.answer_room) if s.answer_room else None
        return room if room is not None and room.confirmed else None

    def _live_rooms(self) -> list[Room]:
        return [r for r in self._s.rooms.values() if not r.ended]

    def _is_party(self, party: Party) -> bool:
        s = self._s
        known = [r.listener for r in s.rooms.values()] + (s.plan.callees if s.plan else [])
        return party == self._inp.caller or party in known

    def _check_active(self) -> None:
        s = self._s
        if s.phase in (Phase.FINISH, Phase.ENDED) or s.stop is not None:
            raise rejection(Rejection.CALL_NOT_ACTIVE, "the call is over")

    def _check_party(self, party: Party) -> None:
        if not self._is_party(party):
            raise rejection(Rejection.NOT_A_PARTY, f"{party.key()} is not a party of this call")

    def _own_answer(self, party: Party) -> Room | None:
        """The live room ``party`` already answered, if any: an answer sent again (a client
        that retries after a lost response) is answered as the first was."""
        room = self._talk_room()
        return room if room is not None and self._s.answered_by == party and not room.ended else None

    def _ringing_room(self, party: Party, answering: bool = True) -> Room:
        """The room ringing ``party`` (also one still in its ring local activity: the message
        waits in its inbox). Rejections: NotAParty / AnsweredByAnother / CallNotActive."""
        s = self._s
        self._check_party(party)
        if answering and s.answered_by is not None and s.answered_by != party:
            raise rejection(Rejection.ANSWERED_BY_ANOTHER, "another listener answered first")
        self._check_active()
        for room in s.rooms.values():
            if room.listener == party and room.phase in (Phase.WAIT, Phase.INITIATE):
                if answering and s.answer_room is not None:
                    break  # this party's own answer is in flight
                return room
        raise rejection(Rejection.CALL_NOT_ACTIVE, f"{party.key()} is not being rung")

    def _hang_up_room(self, party: Party) -> Room | None:
        """The room a hang-up of ``party`` goes to; None = stop the ringing (the caller before
        an answer). Rejections: NotAParty / CallNotActive."""
        self._check_party(party)
        self._check_active()
        if party == self._inp.caller:
            return self._talk_room()
        for room in self._live_rooms():
            if room.listener == party:
                return room
        raise rejection(Rejection.CALL_NOT_ACTIVE, f"{party.key()} has no live room in this call")

    def _follow_up_room(self, party: Party) -> Room:
        """The last room that rang ``party`` in this missed call, inside its follow-up window.
        Rejections: ``FollowUpClosed`` (no window, or it closed), ``NotAParty`` (not rung)."""
        s = self._s
        if not s.follow_up_open:
            raise rejection(Rejection.FOLLOW_UP_CLOSED, "the call has no open follow-up window")
        rung = [r for r in s.rooms.values() if r.listener == party and r.rang and party != self._inp.caller]
        if not rung:
            raise rejection(Rejection.NOT_A_PARTY, f"{party.key()} was not rung by this call")
        return rung[-1]

    def _open_door_room(self, party: Party) -> Room:
        """``_follow_up_room`` when the policy allows opening after a miss and the door offers
        it. Rejections: those of ``_follow_up_room``, ``FollowUpNotAllowed``, ``UnknownAction``."""
        room = self._follow_up_room(party)
        plan = self._s.plan
        if plan is None or not plan.remote_open_after_miss:
            raise rejection(Rejection.FOLLOW_UP_NOT_ALLOWED, "the policy does not allow opening after a miss")
        if FOLLOW_UP_ACTION not in plan.caller_actions:
            raise rejection(
                Rejection.UNKNOWN_ACTION,
                f"the calling device does not offer {FOLLOW_UP_ACTION!r}"
                f" (it offers {plan.caller_actions or 'nothing'})",
            )
        return room

    def _talk_room_for_action(self, inp: CustomActionInput) -> Room:
        """The talk room of ``inp.party``. Rejections: NotAParty / CallNotActive / UnknownAction."""
        if not self._is_party(inp.party) or inp.party == self._inp.caller:
            raise rejection(Rejection.NOT_A_PARTY, f"{inp.party.key()} is not a listener of this call")
        room = self._talk_room()
        if room is None or self._s.answered_by != inp.party or room.phase != Phase.TALK:
            room = self._ringing_room_for_action(inp.party)
        if room is None:
            raise rejection(Rejection.CALL_NOT_ACTIVE, f"{inp.party.key()} is not talking in this call")
        offered = self._s.plan.caller_actions if self._s.plan else []
        if inp.action not in offered:
            raise rejection(
                Rejection.UNKNOWN_ACTION,
                f"the calling device does not offer {inp.action!r} (it offers {offered or 'nothing'})",
            )
        return room

    def _ringing_room_for_action(self, party: Party) -> Room | None:
        """The room ringing ``party`` (phase wait) when the plan's policy allows in-call
        actions while ringing (``open_while_ringing``) and nobody answered; else None."""
        s = self._s
        if s.plan is None or not s.plan.open_while_ringing or s.answered_by is not None:
            return None
        if s.phase in (Phase.FINISH, Phase.ENDED) or s.stop is not None:
            return None
        for room in s.rooms.values():
            if room.listener == party and room.phase == Phase.WAIT:
                return room
        return None

    def _set_phase(self, phase: Phase) -> None:
        """The building call's phase and its search attribute (one upsert with whatever else
        changed)."""
        self._s.phase = phase
        self._vis.phase(phase)
        self._vis.flush()

    def _target_label(self) -> str:
        inp, plan = self._inp, self._s.plan
        if plan is not None and plan.unit_name:
            return plan.unit_name
        if inp.unit_id:
            return f"unit {inp.unit_id}"
        return ", ".join(p.key() for p in inp.callees or []) or "callees"

    def _header(self, state: str) -> str:
        """Live details header: ``"Maple Court Lobby -> unit 101 (sequential): ringing ..."``."""
        s = self._s
        caller = s.plan.caller_name if s.plan else self._inp.caller.key()
        target = f"unit {self._inp.unit_id}" if self._inp.unit_id else self._target_label()
        return f"{caller} -> {target} ({s.strategy.value}): {state}"

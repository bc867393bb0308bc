"""``EscalationWorkflow``: one building call, the ring plan over a unit's targets
(reference FAQ 1.5, "round-robin calling"), one child ``CallWorkflow`` per attempt.

Strategies: sequential (one target at a time, in order), simultaneous (all at
once, first answer wins), round_robin (sequential over the rotation that
``resolve_targets`` applied; ``remember_answer`` on an answer). ``rounds``
repeats the list; skipped/busy targets move on at once; the fallback target
(concierge) is rung once when nobody answered. Durations are seconds.

Messages (the API's interface):
- updates ``answer`` (AnswerInput), ``reject`` (RejectInput), ``hang_up``
  (HangUpInput), ``force_hang_up`` (ForceHangUpInput) -> ``ActionResult``;
  validators raise ``ApplicationError`` of type ``NotAParty``,
  ``AnsweredByAnother`` or ``CallNotActive``. An update returns once its action
  took effect in the child room.
- query ``status`` -> ``CallStatus``.
- signals ``joined`` / ``join_failed`` / ``media_lost`` (JoinInput), forwarded to room
  ``JoinInput.room_id``; ``attempt_update`` (AttemptUpdate) from the children.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.calls import CallActivities
    from activities.directory import DirectoryActivities
    from ringflow.contracts.activities import (
        CallRecord,
        RecordInput,
        RememberAnswerInput,
        ResolvedPlan,
        ResolveInput,
        StartCallInput,
        Target,
    )
    from ringflow.contracts.calls import (
        ActionResult,
        AnswerInput,
        Attempt,
        AttemptOutcome,
        AttemptUpdate,
        CallInput,
        CallResult,
        CallStatus,
        CustomActionAck,
        CustomActionInput,
        CustomActionOutcome,
        CustomActionResult,
        EscalationInput,
        EscalationResult,
        ForceHangUpInput,
        HangUpInput,
        JoinInput,
        Phase,
        RejectInput,
    )
    from ringflow.contracts.common import Party
    from ringflow.contracts.errors import ErrCode
    from ringflow.contracts.events import EventName
    from ringflow.contracts.media import MEDIA_CLOSE_ROOM, RoomStats
    from ringflow.contracts.policies import EscalationPolicy, RingStrategy
    from ringflow.contracts.push import PushType
    from ringflow.contracts.search import (
        CALL_ANSWERED_BY,
        CALL_CALLEES,
        CALL_CALLER,
        CALL_END_REASON,
        CALL_PHASE,
        CALL_UNIT,
    )
    from workflows.events import (
        ACTIVITY_TIMEOUT,
        MEDIA_RETRY,
        RECORD_TIMEOUT,
        RETRY,
        CallLog,
        record,
        seconds,
    )
    from workflows.legacy.call import (
        ATTEMPT_UPDATE,
        MEDIA_SIGNALS,
        SIGNAL_ANSWER,
        SIGNAL_CANCEL,
        SIGNAL_FORCE_HANG_UP,
        SIGNAL_HANG_UP,
        SIGNAL_JOIN_FAILED,
        SIGNAL_JOINED,
        SIGNAL_MEDIA_LOST,
        SIGNAL_REJECT,
        CallWorkflow,
    )

INITIATE_FAILED = "initiateFailed"
"""End reason of a building call that rang nobody: no targets, or every target failed a
pre-call check (section 1); ``err_code`` says why."""
ANSWERED_BY_ANOTHER = "answered by another"
"""``cancelVoip`` reason of the rooms that lost a ring-all race."""

_ERR_CODES = {
    EventName.TIMEOUT: None,
    EventName.BUSY: ErrCode.LISTENER_BUSY,
}


def _error(type_: str, message: str, err_code: ErrCode) -> ApplicationError:
    """A deliberate update rejection; ``details[0]`` = ``{"err_code": n}``."""
    return ApplicationError(message, {"err_code": int(err_code)}, type=type_, non_retryable=True)


@dataclass
class _Stage:
    """Targets rung together (one for sequential/round-robin, all for simultaneous)."""

    targets: list[Target]
    round: int
    fallback: bool
    ring_timeout_s: float


@workflow.defn(name="EscalationWorkflow")
class EscalationWorkflow:
    """One building call (id = ``call_id``): ``run(EscalationInput) -> EscalationResult``."""

    @workflow.init
    def __init__(self, inp: EscalationInput) -> None:
        self._inp = inp
        self._log = CallLog(inp.call_id)
        self._phase = Phase.INITIATE
        self._strategy = inp.policy.strategy if inp.policy else RingStrategy.SEQUENTIAL
        self._plan: ResolvedPlan | None = None
        self._attempts: dict[str, Attempt] = {}
        self._handles: dict[str, ChildWorkflowHandle[Any, Any]] = {}
        self._results: dict[str, CallResult] = {}
        self._answered_by: Party | None = None  # claimed by the answer update (first wins)
        self._answer_room: str | None = None
        self._confirmed: set[str] = set()  # rooms that reached join/talk
        self._done: set[str] = set()  # rooms whose CallWorkflow closed
        self._talk_started_at: datetime | None = None
        self._stop: tuple[str, Any] | None = None  # (signal, input) that ends the ringing
        self._ring_done = False
        self._details = ""
        self._caller_joined = False  # the caller's media is in the call's media room
        self._actions: dict[str, CustomActionResult] = {}  # in-call actions by action_id
        self._actions_recorded: set[str] = set()  # action ids whose customActionResult is written

    # ------------------------------------------------------------------ query / signals

    @workflow.query(name="status")
    def status(self) -> CallStatus:
        """The live call: phase, who is ringing, who answered, the attempts."""
        return CallStatus(
            call_id=self._inp.call_id,
            phase=self._phase,
            strategy=self._strategy,
            ringing=[a.listener for a in self._attempts.values() if a.phase == Phase.WAIT],
            answered_by=self._answered_by if self._answer_room in self._confirmed else None,
            talk_room_id=self._answer_room if self._answer_room in self._confirmed else None,
            talk_started_at=self._talk_started_at,
            attempts=list(self._attempts.values()),
        )

    @workflow.signal(name=ATTEMPT_UPDATE)
    def attempt_update(self, upd: AttemptUpdate) -> None:
        """A child's phase change (``CallWorkflow`` sends it)."""
        att = self._attempts.get(upd.room_id)
        if att is None or att.phase == Phase.ENDED:
            return
        att.phase = upd.phase
        att.outcome = upd.outcome or att.outcome
        att.end_reason = upd.end_reason or att.end_reason
        if upd.phase in (Phase.JOIN, Phase.TALK):
            self._confirmed.add(upd.room_id)
        if upd.room_id == self._answer_room and upd.room_id in self._confirmed:
            if upd.phase == Phase.TALK and self._talk_started_at is None:
                self._talk_started_at = upd.at
            self._set_phase(Phase.FINISH if upd.phase == Phase.ENDED else upd.phase)

    @workflow.signal(name="joined")
    async def joined(self, inp: JoinInput) -> None:
        """Media bridge: ``party`` joined the call's media room (docs/media.md)."""
        await self._media(SIGNAL_JOINED, inp)

    @workflow.signal(name="join_failed")
    async def join_failed(self, inp: JoinInput) -> None:
        """Media bridge: ``party`` could not join the call's media room."""
        await self._media(SIGNAL_JOIN_FAILED, inp)

    @workflow.signal(name=SIGNAL_MEDIA_LOST)
    async def media_lost(self, inp: JoinInput) -> None:
        """Media bridge: ``party``'s media vanished (abortVoip, troubleshooting guide 3(1), 6(1))."""
        await self._media(SIGNAL_MEDIA_LOST, inp)

    async def _media(self, signal: str, inp: JoinInput) -> None:
        """Route a media fact by party (one media room per building call, docs/media.md): the
        caller's to every live room (remembered for the rooms still to come; a caller whose
        media failed or vanished stops the plan), a listener's to that listener's live room."""
        if inp.party == self._inp.caller:
            self._caller_joined = signal == SIGNAL_JOINED
            if not self._caller_joined and self._stop is None and self._phase != Phase.TALK:
                self._stop = (signal, inp)
            for room in self._live_rooms():
                await self._signal(room, signal, inp)
            return
        for room, att in self._attempts.items():
            if att.listener == inp.party and att.phase != Phase.ENDED:
                await self._signal(room, signal, inp)

    # ------------------------------------------------------------------ updates

    @workflow.update(name="answer")
    async def answer(self, inp: AnswerInput) -> ActionResult:
        """A rung listener answers. Returns once the room is in join/talk (``event`` answered).
        Raises ``AnsweredByAnother`` (someone answered first), ``CallNotActive`` (not ringing
        you, or the ring ended before the answer reached the room), ``NotAParty``."""
        room = self._ringing_room(inp.party)  # again: an earlier answer may have won meanwhile
        self._answered_by, self._answer_room = inp.party, room
        await self._signal(room, SIGNAL_ANSWER, inp)
        await workflow.wait_condition(lambda: room in self._confirmed or self._ended(room))
        if room not in self._confirmed:
            self._answered_by = self._answer_room = None
            raise _error(
                "CallNotActive", "the call stopped ringing before the answer", ErrCode.CALL_NOT_ACTIVE
            )
        return ActionResult(
            call_id=self._inp.call_id,
            room_id=room,
            phase=self._attempts[room].phase,
            event=EventName.ANSWERED,
        )

    @answer.validator
    def _validate_answer(self, inp: AnswerInput) -> None:
        self._ringing_room(inp.party)

    @workflow.update(name="reject")
    async def reject(self, inp: RejectInput) -> ActionResult:
        """A rung listener declines: its room ends with ``rejectVoip`` (the plan goes on).
        Raises ``CallNotActive`` (not ringing you), ``NotAParty``."""
        room = self._ringing_room(inp.party, answering=False)
        await self._signal(room, SIGNAL_REJECT, inp)
        return await self._after(room)

    @reject.validator
    def _validate_reject(self, inp: RejectInput) -> None:
        self._ringing_room(inp.party, answering=False)

    @workflow.update(name="hang_up")
    async def hang_up(self, inp: HangUpInput) -> ActionResult:
        """A party hangs up (troubleshooting guide 3, 5, 6): the caller before talk cancels the
        whole call (``cancelVoip`` in every ringing room); a rung listener declines
        (``rejectVoip``); either party in talk ends it (``hangUpVoip``).
        Raises ``CallNotActive`` (call over / nothing of yours is live), ``NotAParty``."""
        room = self._hang_up_room(inp.party)
        if room is None:
            return await self._stop_ringing(SIGNAL_HANG_UP, inp)
        await self._signal(room, SIGNAL_HANG_UP, inp)
        return await self._after(room)

    @hang_up.validator
    def _validate_hang_up(self, inp: HangUpInput) -> None:
        self._hang_up_room(inp.party)

    @workflow.update(name="force_hang_up")
    async def force_hang_up(self, inp: ForceHangUpInput) -> ActionResult:
        """The backend ends the call (``forceHangUpVoip``): every live room ends with
        ``cancelVoip``/``rejectVoip``/``hangUpVoip`` by its phase. Raises ``CallNotActive``."""
        room = self._answer_room if self._answer_room in self._confirmed else None
        if room is None:
            return await self._stop_ringing(SIGNAL_FORCE_HANG_UP, inp)
        await self._signal(room, SIGNAL_FORCE_HANG_UP, inp)
        return await self._after(room)

    @force_hang_up.validator
    def _validate_force(self, inp: ForceHangUpInput) -> None:
        self._check_active()

    @workflow.update(name="custom_action")
    async def custom_action(self, inp: CustomActionInput) -> CustomActionResult:
        """The listener in talk asks the calling device for ``inp.action`` (reference FAQ 1.2,
        ``setCustomBtnText``: "open door"): records ``customAction``, pushes ``custom_action``
        to the caller, then waits for its ack up to ``action_ack_timeout_s`` (or the end of the
        talk) and returns the settled result (``customActionResult`` recorded). Raises
        ``NotAParty``, ``CallNotActive`` (not in talk), ``UnknownAction`` (the device does not
        offer it)."""
        room = self._talk_room_for_action(inp)
        inp_call = self._inp
        action_id = f"{inp_call.call_id}.action-{len(self._actions) + 1}"
        res = self._actions[action_id] = CustomActionResult(
            call_id=inp_call.call_id,
            action_id=action_id,
            action=inp.action,
            room_id=room,
            by=inp.party,
            requested_at=workflow.now(),
        )
        by_name = self._attempts[room].listener_name
        ev = self._log.event(
            EventName.CUSTOM_ACTION,
            party=inp.party,
            data={"action_id": action_id, "action": inp.action, "room_id": room},
        )
        push = self._log.push(
            ev,
            inp_call.caller,
            PushType.CUSTOM_ACTION,
            {
                "action_id": action_id,
                "action": inp.action,
                "by": inp.party.key(),
                "by_name": by_name,
                "room_id": room,
            },
        )
        await record(
            RecordInput(events=[ev], pushes=[push]), f"record customAction {inp.action} by {by_name}"
        )
        timeout = inp_call.action_ack_timeout_s
        with contextlib.suppress(TimeoutError):  # no ack in time: settled as timeout below
            await workflow.wait_condition(
                lambda: res.result is not None or self._ended(room),
                timeout=timeout,
                timeout_summary=f"waiting for the device to {inp.action} ({seconds(timeout)})",
            )
        if res.result is None:
            why = "the call ended first" if self._ended(room) else f"no acknowledgement in {seconds(timeout)}"
            await self._settle(res, CustomActionOutcome.TIMEOUT, why)
        await workflow.wait_condition(lambda: action_id in self._actions_recorded)
        return res

    @custom_action.validator
    def _validate_custom_action(self, inp: CustomActionInput) -> None:
        self._talk_room_for_action(inp)

    @workflow.update(name="custom_action_ack")
    async def custom_action_ack(self, inp: CustomActionAck) -> CustomActionResult:
        """The calling device acknowledges in-call action ``inp.action_id``: ``ok`` -> done,
        else failed (``detail`` says why); records ``customActionResult`` and pushes
        ``custom_action_result`` to the listener. Raises ``NotAParty`` (not the caller),
        ``UnknownActionId``, ``ActionSettled`` (already acknowledged or timed out)."""
        res = self._pending_action(inp)
        outcome = CustomActionOutcome.DONE if inp.ok else CustomActionOutcome.FAILED
        await self._settle(res, outcome, inp.detail)
        await workflow.wait_condition(lambda: res.action_id in self._actions_recorded)
        return res

    @custom_action_ack.validator
    def _validate_custom_action_ack(self, inp: CustomActionAck) -> None:
        self._pending_action(inp)

    def _talk_room_for_action(self, inp: CustomActionInput) -> str:
        """The talk room of ``inp.party``; raises NotAParty / CallNotActive / UnknownAction."""
        if not self._is_party(inp.party) or inp.party == self._inp.caller:
            raise _error(
                "NotAParty", f"{inp.party.key()} is not a listener of this call", ErrCode.NOT_A_PARTY
            )
        room = self._answer_room if self._answer_room in self._confirmed else None
        if room is None or self._answered_by != inp.party or self._attempts[room].phase != Phase.TALK:
            raise _error(
                "CallNotActive", f"{inp.party.key()} is not talking in this call", ErrCode.CALL_NOT_ACTIVE
            )
        offered = self._plan.caller_actions if self._plan else []
        if inp.action not in offered:
            raise _error(
                "UnknownAction",
                f"the calling device does not offer {inp.action!r} (it offers {offered or 'nothing'})",
                ErrCode.UNKNOWN_ACTION,
            )
        return room

    def _pending_action(self, inp: CustomActionAck) -> CustomActionResult:
        """The unsettled action ``inp.action_id``; raises NotAParty / UnknownActionId / ActionSettled."""
        if inp.party != self._inp.caller:
            raise _error(
                "NotAParty", f"{inp.party.key()} is not the caller of this call", ErrCode.NOT_A_PARTY
            )
        res = self._actions.get(inp.action_id)
        if res is None:
            raise _error(
                "UnknownActionId", f"no action {inp.action_id!r} in this call", ErrCode.UNKNOWN_RESOURCE
            )
        if res.result is not None:
            raise _error(
                "ActionSettled",
                f"action {inp.action_id!r} already {res.result.value}",
                ErrCode.ACTION_SETTLED,
            )
        return res

    async def _settle(
        self, res: CustomActionResult, outcome: CustomActionOutcome, detail: str | None
    ) -> None:
        """Settle ``res`` (first settlement wins: set before any await), then record
        ``customActionResult`` and push ``custom_action_result`` to the listener."""
        res.result, res.detail, res.settled_at = outcome, detail, workflow.now()
        ev = self._log.event(
            EventName.CUSTOM_ACTION_RESULT,
            party=self._inp.caller,
            reason=detail,
            data={
                "action_id": res.action_id,
                "action": res.action,
                "result": outcome.value,
                "detail": detail,
            },
        )
        push = self._log.push(
            ev,
            res.by,
            PushType.CUSTOM_ACTION_RESULT,
            {"action_id": res.action_id, "action": res.action, "result": outcome.value, "detail": detail},
        )
        await record(
            RecordInput(events=[ev], pushes=[push]),
            f"record customActionResult {res.action}: {outcome.value}",
        )
        self._actions_recorded.add(res.action_id)

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: EscalationInput) -> EscalationResult:
        """Ring the plan, wait for the answered room to end, record the outcome."""
        self._log_details("resolving targets")
        self._visibility(Phase.INITIATE)
        cancelled = False
        try:
            failure = await self._resolve()
            if failure is not None:
                return await self._end(*failure)
            await self._ring_plan()
            self._ring_done = True
            await workflow.wait_condition(lambda: all(self._ended(r) for r in self._attempts))
        except asyncio.CancelledError:
            cancelled = True
            await self._stop_all(SIGNAL_CANCEL, ForceHangUpInput(reason="building call cancelled"))
            await workflow.wait_condition(lambda: all(self._ended(r) for r in self._attempts))
        result = await self._end(*self._outcome(cancelled))
        if cancelled:
            raise asyncio.CancelledError("building call cancelled")
        return result

    async def _resolve(self) -> tuple[str, ErrCode, str] | None:
        """Run ``start_call`` (one transaction: the call row and ``callStarted``, ``resolve_targets``,
        the plan with phase wait); returns (end_reason, err_code, reason) when nobody can be rung."""
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
            events=[self._log.event(EventName.CALL_STARTED, party=inp.caller, data=self._start_data())],
        )
        # Shielded like the room's ring: a cancellation waits for what was written.
        start = asyncio.create_task(
            workflow.execute_activity_method(
                CallActivities.start_call,
                StartCallInput(
                    call_id=inp.call_id,
                    resolve=ResolveInput(
                        caller=inp.caller, unit_id=inp.unit_id, callees=inp.callees, policy=inp.policy
                    ),
                    started=started,
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RETRY,
                summary=f"record callStarted, resolve targets of {self._unit_label()}",
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
        self._plan = plan = res.plan
        self._strategy = plan.policy.strategy
        callees = plan.callees()
        workflow.upsert_search_attributes([CALL_CALLEES.value_set([p.key() for p in callees])])
        if not callees:
            return INITIATE_FAILED, ErrCode.NO_TARGETS, "nobody may be called from this device"
        self._set_phase(Phase.WAIT)
        return None

    def _stages(self, plan: ResolvedPlan) -> list[_Stage]:
        """The ring plan: per round the targets (all at once, or one by one), then the fallback."""
        policy: EscalationPolicy = plan.policy
        ring = policy.ring_timeout_s or self._inp.default_ring_timeout_s
        stages: list[_Stage] = []
        for rnd in range(1, policy.rounds + 1):
            if not plan.targets:
                break
            if policy.strategy == RingStrategy.SIMULTANEOUS:
                stages.append(_Stage(list(plan.targets), rnd, False, ring))
            else:
                stages += [_Stage([t], rnd, False, ring) for t in plan.targets]
        if plan.fallback is not None:
            stages.append(_Stage([plan.fallback], 1, True, policy.fallback_ring_timeout_s or ring))
        return stages

    async def _ring_plan(self) -> None:
        """Ring stage after stage until an answer is confirmed, the ringing is stopped, or the
        plan is exhausted (FAQ 1.5)."""
        assert self._plan is not None
        stages = self._stages(self._plan)
        for i, stage in enumerate(stages):
            if self._stop is not None:
                return
            if i > 0:
                await self._escalated(stages[i - 1], stage)
            rooms = [await self._start_attempt(t, stage, i + 1, len(stages)) for t in stage.targets]
            await workflow.wait_condition(functools.partial(self._stage_over, rooms))
            room = self._answer_room
            if room is not None and room in self._confirmed:
                await self._on_answered(room)
                return

    async def _on_answered(self, room: str) -> None:
        """First answer wins: cancel the other rooms, remember the answer (round-robin)."""
        inp, plan = self._inp, self._plan
        assert plan is not None and self._answered_by is not None
        for other in self._live_rooms():
            if other != room:
                await self._signal(other, SIGNAL_CANCEL, ForceHangUpInput(reason=ANSWERED_BY_ANOTHER))
        workflow.upsert_search_attributes([CALL_ANSWERED_BY.value_set(self._answered_by.key())])
        self._log_details(f"answered by {self._attempts[room].listener_name}")
        if plan.policy.strategy == RingStrategy.ROUND_ROBIN and inp.unit_id:
            await workflow.execute_activity_method(
                DirectoryActivities.remember_answer,
                RememberAnswerInput(unit_id=inp.unit_id, party=self._answered_by),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                summary=f"remember {self._answered_by.key()} answered {inp.unit_id}",
            )

    async def _escalated(self, prev: _Stage, nxt: _Stage) -> None:
        """Record ``escalated`` between two stages (next target / next round / fallback)."""
        why = (
            "fallback"
            if nxt.fallback
            else (f"round {nxt.round}" if nxt.round != prev.round else "next target")
        )
        who = [t.party.key() for t in nxt.targets]
        await record(
            RecordInput(
                events=[
                    self._log.event(
                        EventName.ESCALATED,
                        listener=nxt.targets[0].party if len(nxt.targets) == 1 else None,
                        reason=why,
                        data={"to": who, "round": nxt.round},
                    )
                ]
            ),
            f"record escalated ({why})",
        )

    async def _start_attempt(self, target: Target, stage: _Stage, n: int, total: int) -> str:
        """Start one child ``CallWorkflow`` (id = room_id); returns the room_id."""
        inp, plan = self._inp, self._plan
        assert plan is not None
        seq = len(self._attempts) + 1
        room = f"{inp.call_id}.{seq}"
        self._attempts[room] = Attempt(
            room_id=room,
            seq=seq,
            round=stage.round,
            listener=target.party,
            listener_name=target.name,
            fallback=stage.fallback,
            started_at=workflow.now(),
        )
        what = "fallback " if stage.fallback else ""
        self._log_details(f"ringing {what}{target.name} ({n}/{total})")
        caller_joined = self._caller_joined
        handle = await workflow.start_child_workflow(
            CallWorkflow.run,
            CallInput(
                call_id=inp.call_id,
                room_id=room,
                seq=seq,
                round=stage.round,
                fallback=stage.fallback,
                caller=inp.caller,
                caller_name=plan.caller_name,
                listener=target.party,
                listener_name=target.name,
                room_type=inp.room_type,
                ring_timeout_s=stage.ring_timeout_s,
                join_timeout_s=inp.join_timeout_s,
                time_limit_s=inp.time_limit_s,
                media_required=inp.media_required,
                parent_workflow_id=workflow.info().workflow_id,
                caller_joined=caller_joined,
                listener_auto_answer=target.auto_answer,
                record_media=plan.policy.record_media,
            ),
            id=room,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"{plan.caller_name} -> {target.name} ({self._unit_label()})",
            static_details=(
                f"attempt {seq}, round {stage.round}{', fallback' if stage.fallback else ''}; "
                f"ring {seconds(stage.ring_timeout_s)}, timeLimit {seconds(inp.time_limit_s)}"
            ),
            search_attributes=workflow.info().typed_search_attributes,
        )
        self._handles[room] = handle
        self._watch(room, handle)
        if self._stop is not None:  # the ringing was stopped while this room was starting
            await self._signal(room, *self._stop)
        elif self._caller_joined and not caller_joined:  # the caller joined meanwhile
            await self._signal(room, SIGNAL_JOINED, JoinInput(room_id=inp.call_id, party=inp.caller))
        return room

    def _watch(self, room: str, handle: ChildWorkflowHandle[Any, Any]) -> None:
        """Collect the child's result in the background."""

        async def wait() -> None:
            att = self._attempts[room]
            try:
                res: CallResult = await handle
                self._results[room] = res
                att.outcome, att.end_reason, att.err_code = res.outcome, res.end_reason, res.err_code
                att.reason, att.keep_time_s, att.ended_at = res.reason, res.keep_time_s, res.ended_at
            except ChildWorkflowError:
                att.outcome = att.outcome or AttemptOutcome.CANCELLED
                att.ended_at = workflow.now()
            att.phase = Phase.ENDED
            self._done.add(room)
            if room == self._answer_room and room in self._confirmed and self._phase != Phase.FINISH:
                self._set_phase(Phase.FINISH)  # the talk room is over: the building call finishes

        asyncio.create_task(wait())  # noqa: RUF006 -- the workflow waits on the attempt's phase

    # ------------------------------------------------------------------ stopping

    async def _stop_ringing(self, signal: str, inp: Any) -> ActionResult:
        """Caller cancel / force before an answer: stop the plan, end every live room."""
        await self._stop_all(signal, inp)
        await workflow.wait_condition(lambda: self._ring_done and all(self._ended(r) for r in self._attempts))
        return ActionResult(call_id=self._inp.call_id, phase=self._phase, event=EventName.CANCEL_VOIP)

    async def _stop_all(self, signal: str, inp: Any) -> None:
        if self._stop is None:
            self._stop = (signal, inp)
        for room in self._live_rooms():
            await self._signal(room, signal, inp)

    async def _after(self, room: str) -> ActionResult:
        """Wait until ``room`` ended; the action's result."""
        await workflow.wait_condition(lambda: self._ended(room))
        att = self._attempts[room]
        return ActionResult(call_id=self._inp.call_id, room_id=room, phase=self._phase, event=att.end_reason)

    # ------------------------------------------------------------------ ending

    def _outcome(self, cancelled: bool) -> tuple[str, ErrCode | None, str | None]:
        """(end_reason, err_code, reason) of the building call (docs/events.md)."""
        ans = self._answer_room if self._answer_room in self._confirmed else None
        if ans is not None:
            att = self._attempts[ans]
            return (att.end_reason or EventName.HANG_UP_VOIP).value, None, att.reason
        if cancelled or (self._stop is not None and self._stop[0] not in MEDIA_SIGNALS):
            return EventName.CANCEL_VOIP.value, None, "call cancelled"
        atts = list(self._attempts.values())
        if atts and all(a.outcome == AttemptOutcome.SKIPPED for a in atts):
            return INITIATE_FAILED, atts[-1].err_code, atts[-1].reason
        reasons = {a.end_reason for a in atts if a.outcome != AttemptOutcome.SKIPPED}
        if len(reasons) == 1:
            only = reasons.pop()
            if only is not None and only != EventName.CANCEL_VOIP:
                return only.value, _ERR_CODES.get(only), None
        return EventName.TIMEOUT.value, None, "nobody answered"

    async def _end(self, end_reason: str, err_code: ErrCode | None, reason: str | None) -> EscalationResult:
        """Record the final call row and ``callEnded``; the result."""
        inp = self._inp
        self._ring_done = True
        ans = self._answer_room if self._answer_room in self._confirmed else None
        answered_by = self._attempts[ans].listener if ans else None
        keep = (self._attempts[ans].keep_time_s or 0) if ans else 0
        self._set_phase(Phase.ENDED)
        updates: list[SearchAttributeUpdate[Any]] = [CALL_END_REASON.value_set(end_reason)]
        workflow.upsert_search_attributes(updates)
        self._log_details(f"ended: {end_reason}" + (f", keepTime {keep} s" if ans else ""))
        # In-call actions still waiting settle now that the talk is over: their
        # customActionResult comes before callEnded.
        if not self._actions_recorded.issuperset(self._actions):
            await workflow.wait_condition(lambda: self._actions_recorded.issuperset(self._actions))
        data: dict[str, Any] = {"end_reason": end_reason}
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
        await record(
            RecordInput(
                call=CallRecord(
                    call_id=inp.call_id,
                    phase=Phase.ENDED,
                    ended_at=workflow.now(),
                    answered_by=answered_by,
                    end_reason=end_reason,
                    err_code=err_code,
                    keep_time_s=keep,
                ),
                events=[ended],
                pushes=[
                    self._log.push(
                        ended,
                        inp.caller,
                        PushType.CALL_FINISHED,
                        {
                            "end_reason": end_reason,
                            "err_code": int(err_code) if err_code is not None else None,
                            "keepTime": keep,
                            "answered_by": answered_by.key() if answered_by else None,
                        },
                    )
                ],
            ),
            f"record callEnded ({end_reason})",
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return EscalationResult(
            call_id=inp.call_id,
            answered_by=answered_by,
            end_reason=end_reason,
            err_code=err_code,
            keep_time_s=keep,
            attempts=list(self._attempts.values()),
        )

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
        return {
            "traffic": [t.model_dump(mode="json") for t in stats.parties],
            "recording": stats.recording,
        }

    # ------------------------------------------------------------------ helpers

    def _stage_over(self, rooms: list[str]) -> bool:
        """An answer is confirmed, or every room of the stage closed."""
        return self._answer_room in self._confirmed or all(self._ended(r) for r in rooms)

    def _ended(self, room: str) -> bool:
        """The room's workflow is closed and its result collected."""
        return room in self._done

    def _live_rooms(self) -> list[str]:
        return [r for r, a in self._attempts.items() if a.phase != Phase.ENDED and r in self._handles]

    def _is_party(self, party: Party) -> bool:
        plan = self._plan
        known = [a.listener for a in self._attempts.values()]
        if plan is not None:
            known += [t.party for t in plan.targets] + ([plan.fallback.party] if plan.fallback else [])
        return party == self._inp.caller or party in known

    def _check_active(self) -> None:
        if self._phase in (Phase.FINISH, Phase.ENDED) or self._stop is not None:
            raise _error("CallNotActive", "the call is over", ErrCode.CALL_NOT_ACTIVE)

    def _ringing_room(self, party: Party, answering: bool = True) -> str:
        """The room ringing ``party``; raises NotAParty / AnsweredByAnother / CallNotActive."""
        if not self._is_party(party):
            raise _error("NotAParty", f"{party.key()} is not a party of this call", ErrCode.NOT_A_PARTY)
        if answering and self._answered_by is not None and self._answered_by != party:
            raise _error("AnsweredByAnother", "another listener answered first", ErrCode.ANSWERED_BY_ANOTHER)
        self._check_active()
        for room, att in self._attempts.items():
            # a room still initiating may already be rung (it notifies the parent after its
            # ring activity, the push goes out in that activity): the answer or reject waits
            # in its inbox; a room that ends up skipped/busy ends the update as not rung
            # (its start may even be resolved in this very workflow task: no handle yet,
            # _signal waits for it)
            ringing = att.phase in (Phase.WAIT, Phase.INITIATE)
            if att.listener == party and ringing:
                if answering and self._answer_room is not None:
                    break  # this party's own answer is in flight
                return room
        raise _error("CallNotActive", f"{party.key()} is not being rung", ErrCode.CALL_NOT_ACTIVE)

    def _hang_up_room(self, party: Party) -> str | None:
        """The room a hang-up of ``party`` goes to; None = stop the ringing (caller before
        an answer). Raises NotAParty / CallNotActive."""
        if not self._is_party(party):
            raise _error("NotAParty", f"{party.key()} is not a party of this call", ErrCode.NOT_A_PARTY)
        self._check_active()
        ans = self._answer_room if self._answer_room in self._confirmed else None
        if party == self._inp.caller:
            return ans
        for room, att in self._attempts.items():
            if att.listener == party and att.phase != Phase.ENDED and room in self._handles:
                return room
        raise _error("CallNotActive", f"{party.key()} has no live room in this call", ErrCode.CALL_NOT_ACTIVE)

    async def _signal(self, room: str, signal: str, arg: Any) -> None:
        """Signal a child room; a room that already ended is ignored. A room still starting
        is waited for: a message can be delivered in the workflow task that also resolves
        the child's start, before its handle is kept."""
        if room in self._attempts and room not in self._handles:  # no extra yield otherwise
            await workflow.wait_condition(lambda: room in self._handles)
        handle = self._handles.get(room)
        if handle is None or self._ended(room):
            return
        try:
            await handle.signal(signal, arg)
        except FailureError:
            workflow.logger.info("room %s ended before signal %s", room, signal)

    def _set_phase(self, phase: Phase) -> None:
        self._phase = phase
        self._visibility(phase)

    def _visibility(self, phase: Phase) -> None:
        inp = self._inp
        updates: list[SearchAttributeUpdate[Any]] = [
            CALL_PHASE.value_set(phase.value),
            CALL_CALLER.value_set(inp.caller.key()),
        ]
        if inp.unit_id:
            updates.append(CALL_UNIT.value_set(inp.unit_id))
        workflow.upsert_search_attributes(updates)

    def _unit_label(self) -> str:
        inp, plan = self._inp, self._plan
        if plan is not None and plan.unit_name:
            return plan.unit_name
        if inp.unit_id:
            return f"unit {inp.unit_id}"
        return ", ".join(p.key() for p in inp.callees or []) or "callees"

    def _log_details(self, state: str) -> None:
        """Live details line, e.g. ``"Maple Court Lobby -> unit 101: ringing bob (2/3)"``."""
        caller = self._plan.caller_name if self._plan else self._inp.caller.key()
        target = f"unit {self._inp.unit_id}" if self._inp.unit_id else self._unit_label()
        self._details = f"{caller} -> {target}: {state}"
        workflow.set_current_details(self._details)

    def _start_data(self) -> dict[str, Any]:
        inp = self._inp
        return {"unit_id": inp.unit_id, "room_type": inp.room_type.value, "strategy": self._strategy.value}

"""``CallWorkflow``: one caller-listener call (one room) through the reference's phases.

initiate (pre-call checks, busy check, ring) -> wait (the listener is rung) -> join
(the listener answered and joins) -> talk -> finish (``endVoip``, ``finishVoip``).
Which event each phase and each party's action produces follows the
troubleshooting guide sections 1-6; ``docs/events.md`` is the table. Durations
are seconds; every timer is a durable workflow timer (FAQ 1.1: no client timers).

Started as a child of ``EscalationWorkflow`` (id = ``room_id``); reports phase
changes to it with the signal ``attempt_update`` (``AttemptUpdate``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.calls import CallActivities
    from ringflow.contracts.activities import (
        Billing,
        CallRecord,
        LineInput,
        RecordInput,
        RingInput,
        RingResult,
        RingStatus,
    )
    from ringflow.contracts.calls import (
        AnswerInput,
        Attempt,
        AttemptOutcome,
        AttemptUpdate,
        CallInput,
        CallResult,
        ForceHangUpInput,
        HangUpInput,
        JoinInput,
        Phase,
        RejectInput,
    )
    from ringflow.contracts.common import Party
    from ringflow.contracts.errors import ErrCode
    from ringflow.contracts.events import CallEvent, EventName
    from ringflow.contracts.media import MEDIA_CONNECT, MediaConnectInput
    from ringflow.contracts.push import PushMessage, PushType
    from ringflow.contracts.search import (
        CALL_CALLEES,
        CALL_CALLER,
        CALL_END_REASON,
        CALL_PHASE,
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

# Signals the CallWorkflow accepts (sent by its EscalationWorkflow).
SIGNAL_ANSWER = "answer"  # AnswerInput: the listener answered (section 4)
SIGNAL_REJECT = "reject"  # RejectInput: the listener declined (section 4)
SIGNAL_HANG_UP = "hang_up"  # HangUpInput: a party hung up (sections 3, 5, 6)
SIGNAL_FORCE_HANG_UP = "force_hang_up"  # ForceHangUpInput: forceHangUpVoip (sections 3, 5, 6)
SIGNAL_CANCEL = "cancel"  # ForceHangUpInput: the building call no longer needs this room
SIGNAL_JOINED = "joined"  # JoinInput: a party's media joined the room
SIGNAL_JOIN_FAILED = "join_failed"  # JoinInput: a party's media could not join
SIGNAL_MEDIA_LOST = "media_lost"  # JoinInput: a party's media vanished (abortVoip)
ATTEMPT_UPDATE = "attempt_update"  # to the parent: AttemptUpdate
MEDIA_SIGNALS = (SIGNAL_JOINED, SIGNAL_JOIN_FAILED, SIGNAL_MEDIA_LOST)

# workflow.patched() ids (samples-python patching/: keep both paths until no history
# without the marker can be replayed, then deprecate_patch, then remove the old path).
PATCH_FINISH_IN_ONE_RECORD = "finish-releases-line-in-record"  # no release_line activity
PATCH_RING_BEFORE_NOTIFY = "ring-before-notifying-parent"  # no signal round trip before the ring
PATCH_END_WITHOUT_NOTIFY = "end-without-notifying-parent"  # the child's result tells the parent

_OUTCOMES = {
    EventName.TIMEOUT: AttemptOutcome.NO_ANSWER,
    EventName.REJECT_VOIP: AttemptOutcome.REJECTED,
    EventName.BUSY: AttemptOutcome.BUSY,
    EventName.CANCEL_VOIP: AttemptOutcome.CANCELLED,
    EventName.JOIN_FAIL_CALLER: AttemptOutcome.FAILED,
    EventName.JOIN_FAIL_LISTENER: AttemptOutcome.FAILED,
}


@dataclass
class _Action:
    """A message from the parent, processed in order by the main loop."""

    kind: str  # one of the SIGNAL_* names
    party: Party | None = None
    reason: str | None = None


@dataclass
class _End:
    """The terminal event chosen for the room (one of ``TERMINAL_EVENTS``)."""

    event: EventName
    party: Party | None = None
    reason: str | None = None


@workflow.defn(name="CallWorkflow")
class CallWorkflow:
    """One caller-listener call in room ``CallInput.room_id``; result ``CallResult``.

    Never fails on purpose: every ending is an outcome (``AttemptOutcome``) with the
    reference's terminal event. A cancellation request (the parent building call was
    cancelled or terminated) still records the terminal event, ``endVoip`` and
    ``finishVoip`` and releases the listener's line, then the workflow ends cancelled.
    """

    @workflow.init
    def __init__(self, inp: CallInput) -> None:
        self._inp = inp
        self._log = CallLog(inp.call_id, inp.room_id)
        self._inbox: list[_Action] = []
        self._phase = Phase.INITIATE
        self._rang = False  # the INCOMING_CALL push went out
        self._claimed = False  # this room holds the listener's line
        self._answered = False
        self._caller_joined = False
        self._listener_joined = False
        self._listener_media = False  # the listener's peer is in the media room (early media)
        self._deadlines: dict[str, datetime] = {}
        self._end: _End | None = None
        self._talk_started_at: datetime | None = None
        self._attempt = Attempt(
            room_id=inp.room_id,
            seq=inp.seq,
            round=inp.round,
            listener=inp.listener,
            listener_name=inp.listener_name,
            fallback=inp.fallback,
        )

    # ------------------------------------------------------------------ messages

    @workflow.signal(name=SIGNAL_ANSWER)
    def answer(self, inp: AnswerInput) -> None:
        """The listener pressed answer."""
        self._inbox.append(_Action(SIGNAL_ANSWER, inp.party))

    @workflow.signal(name=SIGNAL_REJECT)
    def reject(self, inp: RejectInput) -> None:
        """The listener declined."""
        self._inbox.append(_Action(SIGNAL_REJECT, inp.party))

    @workflow.signal(name=SIGNAL_HANG_UP)
    def hang_up(self, inp: HangUpInput) -> None:
        """A party hung up."""
        self._inbox.append(_Action(SIGNAL_HANG_UP, inp.party))

    @workflow.signal(name=SIGNAL_FORCE_HANG_UP)
    def force_hang_up(self, inp: ForceHangUpInput) -> None:
        """The backend ends the call (``forceHangUpVoip``)."""
        self._inbox.append(_Action(SIGNAL_FORCE_HANG_UP, reason=inp.reason))

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel(self, inp: ForceHangUpInput) -> None:
        """The building call stops this attempt (another target answered, the caller gave up)."""
        self._inbox.append(_Action(SIGNAL_CANCEL, reason=inp.reason))

    @workflow.signal(name=SIGNAL_JOINED)
    def joined(self, inp: JoinInput) -> None:
        """A party's media joined the room (media bridge)."""
        self._inbox.append(_Action(SIGNAL_JOINED, inp.party))

    @workflow.signal(name=SIGNAL_JOIN_FAILED)
    def join_failed(self, inp: JoinInput) -> None:
        """A party's media failed to join the room (media bridge)."""
        self._inbox.append(_Action(SIGNAL_JOIN_FAILED, inp.party, inp.error))

    @workflow.signal(name=SIGNAL_MEDIA_LOST)
    def media_lost(self, inp: JoinInput) -> None:
        """A party's media vanished (network, crash): ``abortVoip``."""
        self._inbox.append(_Action(SIGNAL_MEDIA_LOST, inp.party, inp.error))

    @workflow.query(name="status")
    def status(self) -> Attempt:
        """The attempt as it is now."""
        return self._attempt

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: CallInput) -> CallResult:
        """Run the call to its end; see the module docstring and ``docs/events.md``."""
        self._attempt.started_at = workflow.now()
        cancelled = False
        try:
            res = await self._ring()
            if res.status == RingStatus.SKIPPED:
                return await self._skip(res.err_code, res.reason)
            if res.status == RingStatus.BUSY:
                # Reference section 4: the listener is in another call -> busy, endVoip.
                self._end = _End(EventName.BUSY, inp.listener, f"in room {res.held_by}")
            else:
                await self._loop()
        except asyncio.CancelledError:
            # The parent building call is gone: end the room as a forced hang-up would.
            self._end = self._end or self._forced("building call cancelled")
            cancelled = True
        # Shielded: a cancellation arriving while finishing must not skip endVoip or the
        # line release (samples-python: cleanup in a task the cancellation does not reach).
        finishing = asyncio.create_task(self._finish(self._claimed))
        try:
            result = await asyncio.shield(finishing)
        except asyncio.CancelledError:
            await finishing
            raise
        if cancelled:
            raise asyncio.CancelledError("building call cancelled")
        return result

    # ------------------------------------------------------------------ phases

    async def _skip(self, err_code: ErrCode, reason: str | None) -> CallResult:
        """A failed pre-call check (section 1): no room, only ``targetSkipped``."""
        now = workflow.now()
        ev = self._log.event(
            EventName.TARGET_SKIPPED, listener=self._inp.listener, err_code=err_code, reason=reason
        )
        self._attempt.phase = Phase.ENDED
        self._attempt.ended_at = now
        self._attempt.outcome = AttemptOutcome.SKIPPED
        self._attempt.end_reason = EventName.TARGET_SKIPPED
        self._attempt.err_code = err_code
        self._attempt.reason = reason
        self._visibility(Phase.ENDED, EventName.TARGET_SKIPPED)
        await record(
            RecordInput(attempts=[self._attempt], events=[ev]),
            f"record targetSkipped {self._inp.listener_name} (errCode {int(err_code)})",
        )
        await self._notify_end()
        return CallResult(
            room_id=self._inp.room_id,
            outcome=AttemptOutcome.SKIPPED,
            end_reason=EventName.TARGET_SKIPPED,
            err_code=err_code,
            reason=reason,
            ended_at=now,
        )

    async def _ring(self) -> RingResult:
        """Pre-call checks, busy check and the ring in one ``ring`` activity (one transaction):
        the call reminder push (section 1, last line); the caller joins at once (section 2).

        A cancellation while ``ring`` runs waits for its result (what was written is then
        known) and is raised afterwards."""
        inp = self._inp
        now = workflow.now()
        seq = self._log.seq
        ringing = self._log.event(EventName.RINGING, party=inp.caller, listener=inp.listener)
        events = [ringing]
        pushes = [
            self._log.push(
                ringing,
                inp.listener,
                PushType.INCOMING_CALL,
                {
                    "caller_name": inp.caller_name,
                    "caller": inp.caller.key(),
                    "room_type": inp.room_type.value,
                    "ring_timeout_s": inp.ring_timeout_s,
                    "call_id": inp.call_id,
                    "room_id": inp.room_id,
                    "auto_answer": inp.listener_auto_answer,
                },
            )
        ]
        if not inp.media_required or inp.caller_joined:
            events.append(self._log.event(EventName.JOINED_ROOM_BY_CALLER, party=inp.caller))
        self._phase = self._attempt.phase = Phase.WAIT
        # The parent accepts answers for a room that is still initiating (it forwards them
        # and they wait in the inbox), so the parent hears of the ringing after the ring,
        # off the set-up path. Histories from before kept a blocking notification here.
        notify_first = not workflow.patched(PATCH_RING_BEFORE_NOTIFY)
        if notify_first:
            await self._notify()
        ring = asyncio.create_task(
            workflow.execute_activity_method(
                CallActivities.ring,
                RingInput(
                    caller=inp.caller,
                    listener=inp.listener,
                    call_id=inp.call_id,
                    room_id=inp.room_id,
                    record=RecordInput(attempts=[self._attempt], events=events, pushes=pushes),
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RETRY,
                summary=f"pre-call checks, claim line, ring {inp.listener_name}",
            )
        )
        cancelled = False
        try:
            res = await asyncio.shield(ring)
        except asyncio.CancelledError:
            res = await ring
            cancelled = True
        if res.status != RingStatus.RANG:
            self._log.seq = seq  # nothing of the ringing was written: its events never happened
            self._phase = self._attempt.phase = Phase.INITIATE
            if cancelled:
                raise asyncio.CancelledError("building call cancelled")
            return res
        self._rang = True
        # The listener's ring window counts from the ring (the push went out in the activity
        # that just completed), not from before it: a slow ring activity (a worker killed in
        # it, a queue) must not eat into the time the listener has to answer.
        self._deadlines["ring"] = workflow.now() + timedelta(seconds=inp.ring_timeout_s)
        if inp.media_required and not inp.caller_joined:
            self._deadlines["caller_join"] = now + timedelta(seconds=inp.join_timeout_s)
        else:
            self._caller_joined = True
        self._claimed = True
        self._set_phase(Phase.WAIT)
        if cancelled:
            raise asyncio.CancelledError("building call cancelled")
        if not notify_first:
            await self._notify()
        return res

    async def _loop(self) -> None:
        """Wait for messages and deadlines until a terminal event is chosen."""
        while self._end is None:
            name, at = min(self._deadlines.items(), key=lambda kv: kv[1])
            timeout = (at - workflow.now()).total_seconds()
            if not self._inbox and timeout > 0:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._inbox),
                        timeout=timeout,
                        timeout_summary=self._timer_summary(name, timeout),
                    )
                except TimeoutError:
                    await self._on_deadline(name)
                    continue
            elif not self._inbox:
                await self._on_deadline(name)
                continue
            while self._inbox and self._end is None:
                await self._on_action(self._inbox.pop(0))

    def _timer_summary(self, name: str, timeout: float) -> str:
        who = self._inp.listener_name
        return {
            "ring": f"ringing {who} ({seconds(timeout)})",
            "caller_join": f"caller joining ({seconds(timeout)})",
            "listener_join": f"{who} joining ({seconds(timeout)})",
            "time_limit": f"talking with {who}, timeLimit in {seconds(timeout)}",
        }[name]

    async def _on_deadline(self, name: str) -> None:
        """A durable timer fired (sections 2, 3, 5 and FAQ 1.1)."""
        del self._deadlines[name]
        inp = self._inp
        if name == "ring":
            self._end = _End(EventName.TIMEOUT, inp.listener, f"no answer in {seconds(inp.ring_timeout_s)}")
        elif name == "caller_join":
            if self._answered:  # section 5(1): the listener waits, the caller never joins
                self._end = _End(EventName.ABORT_VOIP, inp.caller, "caller did not join in time")
            else:  # section 2(3)
                self._end = _End(EventName.JOIN_FAIL_CALLER, inp.caller, "join timeout")
        elif name == "listener_join":
            self._end = _End(EventName.JOIN_FAIL_LISTENER, inp.listener, "join timeout")
        else:  # time_limit
            self._end = _End(EventName.HANG_UP_VOIP, None, "timeLimit")

    async def _on_action(self, act: _Action) -> None:
        """Apply one message in the current phase (the table in ``docs/events.md``)."""
        inp = self._inp
        is_caller = act.party == inp.caller
        is_listener = act.party == inp.listener
        phase = self._phase
        if act.kind in (SIGNAL_FORCE_HANG_UP, SIGNAL_CANCEL):
            self._end = self._forced(act.reason)
        elif is_listener and not self._answered and act.kind in MEDIA_SIGNALS:
            # docs/media.md: a rung listener's preview peer; losing it does not end the ring
            # (the listener may offer again), joining it makes the answer's join immediate.
            self._listener_media = act.kind == SIGNAL_JOINED
        elif act.kind == SIGNAL_MEDIA_LOST and (is_caller or is_listener):
            self._end = _End(EventName.ABORT_VOIP, act.party, act.reason or "media lost")
        elif act.kind == SIGNAL_JOIN_FAILED and (is_caller or is_listener) and phase != Phase.TALK:
            name = EventName.JOIN_FAIL_CALLER if is_caller else EventName.JOIN_FAIL_LISTENER
            self._end = _End(name, act.party, act.reason or "join failed")
        elif act.kind == SIGNAL_HANG_UP and phase == Phase.TALK and (is_caller or is_listener):
            self._end = _End(EventName.HANG_UP_VOIP, act.party, "hung up")
        elif act.kind == SIGNAL_HANG_UP and is_caller:  # sections 3, 4(1): caller gives up
            self._end = _End(EventName.CANCEL_VOIP, act.party, "caller hung up")
        elif act.kind in (SIGNAL_HANG_UP, SIGNAL_REJECT) and is_listener and phase != Phase.TALK:
            # sections 4, 5: the listener declines, or hangs up while waiting for the caller
            self._end = _End(EventName.REJECT_VOIP, act.party, "listener declined")
        elif act.kind == SIGNAL_ANSWER and is_listener and phase == Phase.WAIT:
            await self._on_answer()
        elif act.kind == SIGNAL_JOINED and is_caller and not self._caller_joined:
            self._caller_joined = True
            self._deadlines.pop("caller_join", None)
            await self._joined([self._log.event(EventName.JOINED_ROOM_BY_CALLER, party=inp.caller)])
        elif act.kind == SIGNAL_JOINED and is_listener and self._answered and not self._listener_joined:
            self._listener_joined = True
            self._deadlines.pop("listener_join", None)
            await self._joined([])
        # anything else does not fit the phase and is ignored (the parent validated it)

    async def _connect_media(self) -> None:
        """docs/media.md: the answering listener becomes the media room's talker (the caller
        hears and sees them, and they the caller), recorded when the unit's policy says so.
        A bridge that cannot be reached is logged; the join timers then end the call."""
        inp = self._inp
        try:
            await workflow.execute_activity(
                MEDIA_CONNECT,
                MediaConnectInput(call_id=inp.call_id, listener=inp.listener, record=inp.record_media),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=MEDIA_RETRY,
                summary=f"media: connect {inp.listener_name} with the caller",
            )
        except ActivityError as e:
            workflow.logger.warning("media connect for %s failed: %s", inp.room_id, e)

    def _forced(self, reason: str | None) -> _End:
        """forceHangUpVoip by phase (sections 3, 5, 6): cancelVoip before the listener
        joined, rejectVoip while the listener waits for the caller, hangUpVoip in talk."""
        if self._phase == Phase.TALK:
            return _End(EventName.HANG_UP_VOIP, None, reason)
        if self._listener_joined:
            return _End(EventName.REJECT_VOIP, None, reason)
        return _End(EventName.CANCEL_VOIP, None, reason)

    async def _on_answer(self) -> None:
        """Section 4: the listener answered; it joins (implicitly unless media_required)."""
        inp = self._inp
        self._answered = True
        self._deadlines.pop("ring", None)
        answered = self._log.event(EventName.ANSWERED, party=inp.listener, listener=inp.listener)
        pushes = [
            self._log.push(
                answered,
                inp.caller,
                PushType.CALL_ANSWERED,
                {"listener": inp.listener.key(), "listener_name": inp.listener_name, "room_id": inp.room_id},
            )
        ]
        if inp.media_required:
            await self._connect_media()
        if inp.media_required and not self._listener_media:
            self._deadlines["listener_join"] = workflow.now() + timedelta(seconds=inp.join_timeout_s)
        else:
            self._listener_joined = True
        self._set_phase(Phase.JOIN)
        await self._joined([answered], pushes)

    async def _joined(self, events: list[CallEvent], pushes: list[PushMessage] | None = None) -> None:
        """Record a join-phase change; when both parties are in, the talk starts (section 6)."""
        inp = self._inp
        call = None
        if self._answered and self._caller_joined and self._listener_joined:
            now = workflow.now()
            self._talk_started_at = now
            self._deadlines = {"time_limit": now + timedelta(seconds=inp.time_limit_s)}
            calling = self._log.event(EventName.CALLING, keep_time_s=0, listener=inp.listener)
            events.append(calling)
            talk = {
                "room_id": inp.room_id,
                "talk_started_at": now.isoformat(),
                "listener": inp.listener.key(),
            }
            pushes = [
                *(pushes or []),
                self._log.push(calling, inp.caller, PushType.TALK_STARTED, talk),
                self._log.push(calling, inp.listener, PushType.TALK_STARTED, talk),
            ]
            self._set_phase(Phase.TALK)
            call = CallRecord(
                call_id=inp.call_id, phase=Phase.TALK, talk_started_at=now, answered_by=inp.listener
            )
        elif self._answered:
            call = CallRecord(call_id=inp.call_id, phase=Phase.JOIN, answered_by=inp.listener)
        if not events:
            return  # the listener's media joined before the caller's: no event to record
        await record(
            RecordInput(call=call, attempts=[self._attempt], events=events, pushes=pushes or []),
            f"record {self._phase.value} {' '.join(e.name.value for e in events)}".strip(),
        )
        if self._answered:
            await self._notify()

    async def _finish(self, claimed: bool) -> CallResult:
        """Finish (sections 2-6, FAQ 1.10): the terminal event, ``endVoip`` (keepTime), then
        ``finishVoip`` (billed keepTime), billing, pushes; the line is released in every path."""
        inp = self._inp
        end = self._end
        assert end is not None
        now = workflow.now()
        keep = int((now - self._talk_started_at).total_seconds()) if self._talk_started_at else 0
        talked = self._talk_started_at is not None
        keep_on_terminal = keep if end.event in (EventName.HANG_UP_VOIP, EventName.ABORT_VOIP) else None
        self._set_phase(Phase.FINISH)
        terminal = self._log.event(
            end.event, party=end.party, listener=inp.listener, reason=end.reason, keep_time_s=keep_on_terminal
        )
        end_voip = self._log.event(EventName.END_VOIP, keep_time_s=keep, reason=end.event.value)
        finish = self._log.event(EventName.FINISH_VOIP, keep_time_s=keep)
        payload = {"end_reason": end.event.value, "keepTime": keep, "room_id": inp.room_id}
        pushes = [self._log.push(end_voip, inp.caller, PushType.CALL_ENDED, payload)]
        if self._rang and not self._answered and end.event != EventName.REJECT_VOIP:
            pushes.append(self._log.push(end_voip, inp.listener, PushType.CALL_CANCELLED, payload))
        elif self._rang:
            pushes.append(self._log.push(end_voip, inp.listener, PushType.CALL_ENDED, payload))
        outcome = AttemptOutcome.ANSWERED if talked else _OUTCOMES.get(end.event, AttemptOutcome.FAILED)
        self._attempt.phase = Phase.ENDED
        self._attempt.ended_at = now
        self._attempt.outcome = outcome
        self._attempt.end_reason = end.event
        self._attempt.reason = end.reason
        self._attempt.keep_time_s = keep
        billing = (
            Billing(
                room_id=inp.room_id,
                call_id=inp.call_id,
                caller=inp.caller,
                listener=inp.listener,
                keep_time_s=keep,
            )
            if talked
            else None
        )
        self._phase = Phase.ENDED
        self._visibility(Phase.ENDED, end.event)
        workflow.set_current_details(
            f"{inp.caller_name} -> {inp.listener_name}: {end.event.value}, keepTime {keep} s"
        )
        folded = workflow.patched(PATCH_FINISH_IN_ONE_RECORD)
        try:
            await record(
                RecordInput(
                    attempts=[self._attempt],
                    events=[terminal, end_voip, finish],
                    pushes=pushes,
                    billing=billing,
                    release=self._line() if claimed and folded else None,
                ),
                f"record {end.event.value} endVoip finishVoip (keepTime {keep} s)"
                + (f", release line of {inp.listener_name}" if claimed and folded else ""),
            )
        finally:
            if claimed and not folded:
                await workflow.execute_activity_method(
                    CallActivities.release_line,
                    self._line(),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                    summary=f"release line of {inp.listener_name}",
                )
        await self._notify_end()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CallResult(
            room_id=inp.room_id,
            outcome=outcome,
            end_reason=end.event,
            reason=end.reason,
            keep_time_s=keep,
            talk_started_at=self._talk_started_at,
            ended_at=now,
        )

    # ------------------------------------------------------------------ helpers

    def _line(self) -> LineInput:
        return LineInput(party=self._inp.listener, call_id=self._inp.call_id, room_id=self._inp.room_id)

    def _set_phase(self, phase: Phase) -> None:
        """Phase change: attempt row, search attributes, live details."""
        self._phase = phase
        self._attempt.phase = phase
        self._visibility(phase, None)
        state = {
            Phase.WAIT: f"ringing {self._inp.listener_name}",
            Phase.JOIN: f"{self._inp.listener_name} answered, joining",
            Phase.TALK: f"talking with {self._inp.listener_name}",
            Phase.FINISH: "finishing",
        }.get(phase, phase.value)
        workflow.set_current_details(f"{self._inp.caller_name} -> {self._inp.listener_name}: {state}")

    def _visibility(self, phase: Phase, end_reason: EventName | None) -> None:
        updates: list[SearchAttributeUpdate[Any]] = [
            CALL_PHASE.value_set(phase.value),
            CALL_CALLER.value_set(self._inp.caller.key()),
            CALL_CALLEES.value_set([self._inp.listener.key()]),
        ]
        if end_reason is not None:
            updates.append(CALL_END_REASON.value_set(end_reason.value))
        workflow.upsert_search_attributes(updates)

    async def _notify_end(self) -> None:
        """The room is over: its parent learns it from this workflow's result (the parent
        collects every child's result); histories from before also signalled it."""
        if not workflow.patched(PATCH_END_WITHOUT_NOTIFY):
            await self._notify()

    async def _notify(self) -> None:
        """Tell the parent the attempt's phase (signal ``attempt_update``)."""
        if not self._inp.parent_workflow_id:
            return
        upd = AttemptUpdate(
            room_id=self._inp.room_id,
            phase=self._attempt.phase,
            at=workflow.now(),
            outcome=self._attempt.outcome,
            end_reason=self._attempt.end_reason,
        )
        try:
            await workflow.get_external_workflow_handle(self._inp.parent_workflow_id).signal(
                ATTEMPT_UPDATE, upd
            )
        except FailureError:
            workflow.logger.info("parent %s gone; attempt update dropped", self._inp.parent_workflow_id)

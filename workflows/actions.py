"""``InCallActions``: a building call's in-call actions (reference FAQ 1.2,
``setCustomBtnText``: "open door"), requested by the listener in talk, acknowledged by the
calling device.

Each action: ``customAction`` + push ``custom_action`` to the caller, then ONE settlement
(the device's ack -> done/failed, or ``action_ack_timeout_s`` passing or the talk ending
first -> timeout): ``customActionResult`` + push ``custom_action_result`` to the listener.
After a missed call (issue 10 item 4) a rung resident may ask for ``open_door`` inside the
follow-up window (:meth:`InCallActions.request_after_miss`): the same events, flagged
``after_miss``. Both are written with the ``record`` local activity; ids are deterministic
(``"<call_id>.action-<n>"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ringflow.contracts.activities import RecordInput
    from ringflow.contracts.calls import CustomActionAck, CustomActionOutcome, CustomActionResult
    from ringflow.contracts.common import Party
    from ringflow.contracts.events import EventName
    from ringflow.contracts.messages import Rejection, rejection
    from ringflow.contracts.push import PushType
    from ringflow.contracts.tenancy import unqualified
    from workflows.events import CallLog, record_local, seconds
    from workflows.room import Room


class InCallActions:
    """The actions of one building call, by ``action_id``; events go to the call's ``log``."""

    __slots__ = ("_ack_timeout_s", "_actions", "_call_id", "_caller", "_log", "_recorded")

    def __init__(self, call_id: str, caller: Party, log: CallLog, ack_timeout_s: float) -> None:
        self._call_id = call_id
        self._caller = caller
        self._log = log
        self._ack_timeout_s = ack_timeout_s
        self._actions: dict[str, CustomActionResult] = {}
        self._recorded: set[str] = set()  # action ids whose customActionResult is written

    def all_recorded(self) -> bool:
        """Every action's ``customActionResult`` is written (none is waiting)."""
        return self._recorded.issuperset(self._actions)

    def pending(self, inp: CustomActionAck) -> CustomActionResult:
        """The unsettled action ``inp.action_id``. Raises the rejections ``NotAParty`` (not the
        caller), ``UnknownActionId``, ``ActionSettled`` (already acknowledged or timed out)."""
        if inp.party != self._caller:
            raise rejection(Rejection.NOT_A_PARTY, f"{inp.party.key()} is not the caller of this call")
        res = self._actions.get(inp.action_id)
        if res is None:
            raise rejection(Rejection.UNKNOWN_ACTION_ID, f"no action {inp.action_id!r} in this call")
        if res.result is not None:
            raise rejection(Rejection.ACTION_SETTLED, f"action {inp.action_id!r} already {res.result.value}")
        return res

    async def request(
        self, room: Room, by: Party, action: str, while_ringing: bool = False
    ) -> CustomActionResult:
        """Record ``customAction`` and push it to the caller, wait for the ack up to the ack
        timeout or the end of ``room`` (its talk, or its ringing when ``while_ringing``: the
        listener asked from the incoming-call screen, policy ``open_while_ringing``; the event's
        and the push's data then say ``while_ringing: true``), and return the settled result."""
        flags = {"while_ringing": True} if while_ringing else {}  # only then: histories unchanged
        return await self._request(
            room.spec.room_id, room.spec.listener_name, by, action, lambda: room.ended, flags
        )

    async def request_after_miss(
        self, room_id: str, by_name: str, by: Party, action: str
    ) -> CustomActionResult:
        """A rung resident opens the door remotely inside a missed call's follow-up window
        (issue 10 item 4): audited as this call's in-call action, with ``after_miss: true`` in
        the event's and the push's data, ``room_id`` the resident's last room of the call; the
        device acknowledges as in talk; it settles on the ack or the ack timeout."""
        return await self._request(room_id, by_name, by, action, lambda: False, {"after_miss": True})

    async def _request(
        self,
        room_id: str,
        by_name: str,
        by: Party,
        action: str,
        over: Callable[[], bool],
        flags: dict[str, bool],
    ) -> CustomActionResult:
        """``request``'s steps; ``over``: the talk (or ring) the action belongs to ended."""
        # the tenant's own call id (issue 9): the party acknowledges with it in a URL; the same
        # id as before for the default tenant, so stored histories replay
        action_id = f"{unqualified(self._call_id)}.action-{len(self._actions) + 1}"
        res = self._actions[action_id] = CustomActionResult(
            call_id=self._call_id,
            action_id=action_id,
            action=action,
            room_id=room_id,
            by=by,
            requested_at=workflow.now(),
        )
        data: dict[str, object] = {"action_id": action_id, "action": action, "room_id": res.room_id, **flags}
        ev = self._log.event(EventName.CUSTOM_ACTION, party=by, data=data)
        payload = {
            "action_id": action_id,
            "action": action,
            "by": by.key(),
            "by_name": by_name,
            "room_id": res.room_id,
            **flags,
        }
        push = self._log.push(ev, self._caller, PushType.CUSTOM_ACTION, payload)
        await record_local(
            RecordInput(events=[ev], pushes=[push]), f"record customAction {action} by {by_name}"
        )
        timeout = self._ack_timeout_s
        with contextlib.suppress(TimeoutError):  # no ack in time: settled as timeout below
            await workflow.wait_condition(
                lambda: res.result is not None or over(),
                timeout=timeout,
                timeout_summary=f"waiting for the device to {action} ({seconds(timeout)})",
            )
        if res.result is None:
            why = "the call ended first" if over() else f"no acknowledgement in {seconds(timeout)}"
            await self.settle(res, CustomActionOutcome.TIMEOUT, why)
        await workflow.wait_condition(lambda: action_id in self._recorded)
        return res

    async def acknowledge(self, inp: CustomActionAck) -> CustomActionResult:
        """The device's ack of ``inp.action_id``: ``ok`` -> done, else failed. Raises as
        :meth:`pending`."""
        res = self.pending(inp)
        await self.settle(res, CustomActionOutcome.DONE if inp.ok else CustomActionOutcome.FAILED, inp.detail)
        await workflow.wait_condition(lambda: res.action_id in self._recorded)
        return res

    async def settle(self, res: CustomActionResult, outcome: CustomActionOutcome, detail: str | None) -> None:
        """Settle ``res`` (first settlement wins: set before any await), then record
        ``customActionResult`` and push ``custom_action_result`` to the listener."""
        res.result, res.detail, res.settled_at = outcome, detail, workflow.now()
        data = {"action_id": res.action_id, "action": res.action, "result": outcome.value, "detail": detail}
        ev = self._log.event(EventName.CUSTOM_ACTION_RESULT, party=self._caller, reason=detail, data=data)
        push = self._log.push(
            ev,
            res.by,
            PushType.CUSTOM_ACTION_RESULT,
            {"action_id": res.action_id, "action": res.action, "result": outcome.value, "detail": detail},
        )
        await record_local(
            RecordInput(events=[ev], pushes=[push]),
            f"record customActionResult {res.action}: {outcome.value}",
        )
        self._recorded.add(res.action_id)

"""Reporting media facts to Temporal: signals to the building call, room-end watch.

One media room per building call (``docs/media.md``): the bridge signals the
building call's workflow (id = ``call_id``) ``joined`` / ``join_failed`` / ``media_lost``
with ``JoinInput(room_id=call_id, party, error)``, and the workflow routes them by
party; a room closes when that workflow closes.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from ringflow.contracts.calls import JoinInput
from ringflow.contracts.media import BridgeLostInput
from ringflow.contracts.messages import Signal

log = logging.getLogger(__name__)

NOT_FOUND_PATIENCE_S = 10.0
"""How long a room's workflow may be unknown before the watch gives up, seconds: the API
authorises offers only for a running building call and the talker is set by its own
workflow, so a missing workflow is at most one that is still starting."""


class TemporalReporter:
    """:class:`media.bridge.Reporter` over a Temporal ``client`` (pydantic data converter)."""

    def __init__(self, client: Client, retry_s: float = 1.0) -> None:
        self.client = client
        self.retry_s = retry_s

    async def report(self, call_id: str, signal: str, inp: JoinInput) -> None:
        """Signal ``signal`` with ``inp`` to workflow ``call_id``. A call that is already
        over (NOT_FOUND) is logged and ignored; other RPC errors are logged (the workflow's
        own join timers end the call if a signal never arrives)."""
        try:
            await self.client.get_workflow_handle(call_id).signal(signal, inp)
        except RPCError as e:
            level = logging.INFO if e.status == RPCStatusCode.NOT_FOUND else logging.WARNING
            log.log(level, "signal %s to %s not delivered: %s", signal, call_id, e)

    async def room_ended(self, call_id: str) -> None:
        """Return when workflow ``call_id`` (the building call) has closed (any outcome), or
        when it stayed unknown for ``NOT_FOUND_PATIENCE_S``; other RPC errors are retried
        every ``retry_s``."""
        handle = self.client.get_workflow_handle(call_id)
        unknown_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                await handle.result(follow_runs=False)
                return
            except WorkflowFailureError:
                return  # failed, cancelled, terminated or timed out: closed all the same
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    unknown_since = unknown_since if unknown_since is not None else loop.time()
                    if loop.time() - unknown_since > NOT_FOUND_PATIENCE_S:
                        log.warning("room %s has no workflow; closing it", call_id)
                        return
                else:
                    log.warning("watching room %s: %s", call_id, e)
            await asyncio.sleep(self.retry_s)


async def signal_bridge_lost(client: Client, call_id: str, inp: BridgeLostInput) -> None:
    """Signal ``media_bridge_lost`` with ``inp`` to building call ``call_id`` (issue 13 item 4:
    the process or node that held its room died). A call already over (NOT_FOUND) is logged
    at INFO; other RPC errors are logged as warnings (never raises: the caller goes on with
    the other rooms)."""
    try:
        await client.get_workflow_handle(call_id).signal(Signal.MEDIA_BRIDGE_LOST, inp)
    except RPCError as e:
        level = logging.INFO if e.status == RPCStatusCode.NOT_FOUND else logging.WARNING
        log.log(level, "signal %s to %s not delivered: %s", Signal.MEDIA_BRIDGE_LOST, call_id, e)

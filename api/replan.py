"""``notify_plan_changed``: a directory or policy change reaches the calls still ringing
(issue 10 item 3).

The one function every API path that changes who a ringing call would ring calls AFTER its
change committed: the directory routes (a unit replaced or deleted: residents, order, ring
timeout, policy; a user's do-not-disturb set or the user deleted), the resident's own
do-not-disturb (``PUT /v1/me/do-not-disturb``), and later the quiet hours and presence routes.
It finds the calls in phase initiate/wait of the unit (tenant + site) or that may ring the
user (``store.calls.ringing_calls``) and sends each the workflow signal ``plan_changed``
(``PlanChangedInput``): the workflow re-resolves its targets not yet rung at a recorded point
and records ``planChanged`` (docs/events.md). The API decides nothing about the plan.

A call that ended meanwhile (its workflow closed or gone) is skipped; a Temporal error for
one call is logged and the others are still signalled: the change itself is already stored,
and the ring's pre-call checks read the directory again anyway (docs/design.md).
"""

from __future__ import annotations

import logging

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from ringflow.contracts.calls import PlanChangedInput
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.messages import Signal
from store import calls as store

log = logging.getLogger(__name__)


async def notify_plan_changed(
    client: Client,
    pool: asyncpg.Pool,
    tenant_id: str,
    what: str,
    *,
    unit_id: str | None = None,
    site_id: str | None = None,
    user_id: str | None = None,
) -> list[str]:
    """Signal ``plan_changed`` (``what``: a sentence for the ``planChanged`` event, at most 200
    chars) to tenant ``tenant_id``'s calls still ringing unit ``unit_id`` of site ``site_id``
    (None: the default site), or, with ``user_id``, every call that may ring that user. Give
    exactly one of ``unit_id`` and ``user_id`` (else ``ValueError``). Returns the workflow ids
    signalled (oldest call first). Raises nothing else (see the module docstring)."""
    party = Party(kind=PartyKind.USER, id=user_id) if user_id is not None else None
    call_ids = await store.ringing_calls(pool, tenant_id, unit_id=unit_id, site_id=site_id, party=party)
    done: list[str] = []
    for call_id in call_ids:
        try:
            await client.get_workflow_handle(call_id).signal(
                Signal.PLAN_CHANGED, PlanChangedInput(what=what[:200])
            )
        except RPCError as e:  # closed meanwhile (NOT_FOUND), or Temporal unavailable
            log.warning("plan_changed to call %s not delivered: %s", call_id, e)
            continue
        done.append(call_id)
    return done

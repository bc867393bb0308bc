"""``/v1/me/do-not-disturb``: a resident's own do-not-disturb (issue 11 item 5), from the
resident app (party token of a user).

- ``GET`` -> :class:`DoNotDisturb` (``active`` is what the ring plan sees now);
- ``PUT {"until": <UTC datetime> | null}`` switches it on until then (null: until switched
  off; at most 30 days ahead) -> :class:`DoNotDisturb`;
- ``DELETE`` switches it off -> :class:`DoNotDisturb` (the property manager's
  ``User.do_not_disturb`` stays: ``by_manager``).

While active, calls skip the resident with errCode 1003 (``targetSkipped``, reason
``dnd: ...``; ``activities/directory.py`` ``precall_checks``). Problems: 401 (no/bad token,
1011), 403 ``forbidden`` (1016: a device's token: do-not-disturb is a resident's), 404
``not-found`` (1008: the token's user was deleted), 422 ``validation`` (1010: ``until`` not
in the future or beyond 30 days).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from api.deps import PartyIdentity, PartyIdentityDep, PoolDep, TemporalDep
from api.problems import Problem, not_found, problem_responses
from api.replan import notify_plan_changed
from ringflow.contracts.availability import MAX_DND_S, DoNotDisturb, DoNotDisturbIn
from ringflow.contracts.common import PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import qualify
from store import availability
from store import directory as directory_store

router = APIRouter(prefix="/v1/me", tags=["me"])

_PROBLEMS = problem_responses(
    403,
    404,
    descriptions={
        403: "`forbidden` (errCode 1016): the token is a device's; do-not-disturb is a resident's",
        404: "`not-found` (errCode 1008): the token's user no longer exists",
    },
)


def _user_id(ident: PartyIdentity) -> str:
    party = ident.party
    if party.kind is not PartyKind.USER:
        raise Problem(
            403,
            "forbidden",
            "Not a resident",
            f"{party.key()} is a device; do-not-disturb is a resident's (user token)",
            ErrCode.FORBIDDEN,
        )
    return party.id


async def _view(pool: PoolDep, user_id: str, tenant: str) -> DoNotDisturb:
    # user_availability rows are keyed by the tenant-qualified user id (issue 9, tenancy.qualify)
    async with pool.acquire() as conn:
        user = await directory_store.find_user(conn, user_id, tenant=tenant)
        if user is None:
            raise not_found("user", user_id)
        own = await availability.own_dnd(conn, qualify(tenant, user_id))
    return DoNotDisturb(
        active=own.active or user.do_not_disturb,
        until=own.until,
        since=own.since,
        by_manager=user.do_not_disturb,
        own=own.active,
    )


@router.get("/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def get_do_not_disturb(ident: PartyIdentityDep, pool: PoolDep) -> DoNotDisturb:
    """The token's resident's do-not-disturb (``active``: calls skip them now)."""
    return await _view(pool, _user_id(ident), ident.tenant_id)


@router.put("/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def put_do_not_disturb(
    body: DoNotDisturbIn, ident: PartyIdentityDep, pool: PoolDep, client: TemporalDep
) -> DoNotDisturb:
    """Switch the resident's own do-not-disturb on until ``until`` (UTC; null = until
    switched off). 422 ``validation`` when ``until`` is not in the future or more than 30
    days ahead (``MAX_DND_S``)."""
    user_id = _user_id(ident)
    now = datetime.now(UTC)
    if body.until is not None and not now < body.until <= now + timedelta(seconds=MAX_DND_S):
        raise Problem(
            422,
            "validation",
            "Invalid request",
            "until must be in the future and at most 30 days ahead",
            ErrCode.VALIDATION,
        )
    async with pool.acquire() as conn:
        if await directory_store.find_user(conn, user_id, tenant=ident.tenant_id) is None:
            raise not_found("user", user_id)
        await availability.set_dnd(conn, qualify(ident.tenant_id, user_id), body.until)
    # issue 10 item 3: the calls still ringing this resident re-plan (api/replan.py)
    await notify_plan_changed(
        client, pool, ident.tenant_id, f"user {user_id} do-not-disturb on", user_id=user_id
    )
    return await _view(pool, user_id, ident.tenant_id)


@router.delete("/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def delete_do_not_disturb(ident: PartyIdentityDep, pool: PoolDep) -> DoNotDisturb:
    """Switch the resident's own do-not-disturb off (the manager's stays: ``by_manager``)."""
    user_id = _user_id(ident)
    async with pool.acquire() as conn:
        await availability.clear_dnd(conn, qualify(ident.tenant_id, user_id))
    return await _view(pool, user_id, ident.tenant_id)

"""A person's availability (issue 11 item 5, issue 10 items 1-2): manual do-not-disturb, weekly
quiet hours and presence, for the person themself (``/v1/me/...``, a user's party token: the
resident app) and for the backend (``/v1/users/{user_id}/...``, an API key with
``directory:read`` to read and ``directory:write`` to change, for any user of its tenant; a
user's own party token may use these too, for itself only).

- ``GET``/``PUT {"until"}``/``DELETE .../do-not-disturb`` -> :class:`DoNotDisturb` (``until``:
  UTC, in the future, at most 30 days ahead; null = until switched off);
- ``GET``/``PUT {"rules": [...]}`` ``.../quiet-hours`` -> :class:`QuietHoursIn` (weekly rules in
  the site's time zone unless a rule names one; ``ringflow.contracts.availability.QuietHours``);
- ``GET``/``PUT {"status": "away"|"available", "until"}`` ``.../presence`` -> :class:`Presence`
  (one per person across the tenant's sites; ``in_call`` is derived from their line). A change
  pushes ``presence`` to the person's own clients, in the same transaction.

Whether a call rings the person is decided at the ring's instant by ``ringflow.availability``
(``activities/directory.py`` ``precall_checks``: errCode 1017 away, 1003 do-not-disturb).
Problems: 401 (no/bad token or key, 1011), 403 ``forbidden`` (1016: a device's token, another
user's token, or a key without the scope), 404 ``not-found`` (1008: no such user in the
tenant), 422 ``validation`` (1010: ``until`` not in the future or beyond 30 days, a bad rule).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from temporalio.client import Client

from api.deps import Access, PartyIdentity, PartyIdentityDep, PoolDep, TemporalDep, backend_or_party
from api.problems import Problem, not_found, problem_responses
from api.replan import notify_plan_changed
from ringflow import availability as rules
from ringflow.contracts.availability import (
    MAX_DND_S,
    DoNotDisturb,
    DoNotDisturbIn,
    Presence,
    PresenceIn,
    PresenceStatus,
    QuietHoursIn,
)
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.push import PushMessage, PushType
from ringflow.contracts.tenancy import Scope, qualify, unqualified
from store import availability, outbox
from store.availability import Conn
from store.db import transaction

router = APIRouter(tags=["availability"])

_PROBLEMS = problem_responses(
    403,
    404,
    descriptions={
        403: "`forbidden` (errCode 1016): a device's token, another user's token, or a key without the scope",
        404: "`not-found` (errCode 1008): no such user in the tenant",
    },
)

Read = Annotated[Access, Depends(backend_or_party(Scope.DIRECTORY_READ))]
Write = Annotated[Access, Depends(backend_or_party(Scope.DIRECTORY_WRITE))]


def _forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Not yours", detail, ErrCode.FORBIDDEN)


def _me(ident: PartyIdentity) -> Access:
    """The token's user as the subject of a ``/v1/me/...`` route; 403 for a device's token."""
    if ident.party.kind is not PartyKind.USER:
        raise _forbidden(f"{ident.party.key()} is a device; availability is a person's (user token)")
    return Access(ident.tenant_id, ident.party)


def _subject(access: Access, user_id: str) -> str:
    """``user_id`` when the caller may act on it: the backend (any user of its tenant) or that
    user's own token; 403 otherwise."""
    party = access.party
    if party is not None and (party.kind is not PartyKind.USER or party.id != user_id):
        raise _forbidden(f"{party.key()} may only see and change its own availability")
    return user_id


def _check_until(until: datetime | None) -> None:
    """422 ``validation`` unless ``until`` is None or in the future and at most 30 days ahead."""
    now = datetime.now(UTC)
    if until is not None and not now < until <= now + timedelta(seconds=MAX_DND_S):
        raise Problem(
            422,
            "validation",
            "Invalid request",
            "until must be in the future and at most 30 days ahead",
            ErrCode.VALIDATION,
        )


async def _person(conn: Conn, tenant: str, user_id: str) -> rules.PersonAvailability:
    person = await availability.load_person(conn, user_id, tenant=tenant)
    if person is None:
        raise not_found("user", user_id)
    return person


# ---------------------------------------------------------------- do-not-disturb


async def _get_dnd(pool: PoolDep, tenant: str, user_id: str) -> DoNotDisturb:
    async with pool.acquire() as conn:
        person = await _person(conn, tenant, user_id)
    own = rules.dnd_active(person, datetime.now(UTC))
    return DoNotDisturb(
        active=own or person.manager_dnd,
        until=person.dnd_until if own else None,
        since=person.dnd_since if own else None,
        by_manager=person.manager_dnd,
        own=own,
    )


async def _put_dnd(
    pool: PoolDep, client: Client, tenant: str, user_id: str, body: DoNotDisturbIn
) -> DoNotDisturb:
    _check_until(body.until)
    async with transaction(pool) as conn:
        await _person(conn, tenant, user_id)
        await availability.set_dnd(conn, qualify(tenant, user_id), body.until)
    await notify_plan_changed(client, pool, tenant, f"user {user_id} do-not-disturb on", user_id=user_id)
    return await _get_dnd(pool, tenant, user_id)


async def _delete_dnd(pool: PoolDep, tenant: str, user_id: str) -> DoNotDisturb:
    async with transaction(pool) as conn:
        await _person(conn, tenant, user_id)
        await availability.clear_dnd(conn, qualify(tenant, user_id))
    return await _get_dnd(pool, tenant, user_id)


@router.get("/v1/me/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def get_my_do_not_disturb(ident: PartyIdentityDep, pool: PoolDep) -> DoNotDisturb:
    """The token's resident's do-not-disturb (``active``: calls skip them now)."""
    me = _me(ident)
    return await _get_dnd(pool, me.tenant_id, ident.party.id)


@router.put("/v1/me/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def put_my_do_not_disturb(
    body: DoNotDisturbIn, ident: PartyIdentityDep, pool: PoolDep, client: TemporalDep
) -> DoNotDisturb:
    """Switch the resident's own do-not-disturb on until ``until`` (UTC; null = until
    switched off). 422 ``validation`` when ``until`` is not in the future or more than 30
    days ahead (``MAX_DND_S``)."""
    me = _me(ident)
    return await _put_dnd(pool, client, me.tenant_id, ident.party.id, body)


@router.delete("/v1/me/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def delete_my_do_not_disturb(ident: PartyIdentityDep, pool: PoolDep) -> DoNotDisturb:
    """Switch the resident's own do-not-disturb off (the manager's stays: ``by_manager``)."""
    me = _me(ident)
    return await _delete_dnd(pool, me.tenant_id, ident.party.id)


@router.get("/v1/users/{user_id}/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def get_do_not_disturb(user_id: str, access: Read, pool: PoolDep) -> DoNotDisturb:
    """A user's manual do-not-disturb (backend ``directory:read``, or the user's own token)."""
    return await _get_dnd(pool, access.tenant_id, _subject(access, user_id))


@router.put("/v1/users/{user_id}/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def put_do_not_disturb(
    user_id: str, body: DoNotDisturbIn, access: Write, pool: PoolDep, client: TemporalDep
) -> DoNotDisturb:
    """Switch a user's own do-not-disturb on until ``until`` (backend ``directory:write``: the
    same switch as the resident's ``PUT /v1/me/do-not-disturb``, which the resident may switch
    off; the manager's own is ``User.do_not_disturb``). 422 as the resident's route."""
    return await _put_dnd(pool, client, access.tenant_id, _subject(access, user_id), body)


@router.delete("/v1/users/{user_id}/do-not-disturb", response_model=DoNotDisturb, responses=_PROBLEMS)
async def delete_do_not_disturb(user_id: str, access: Write, pool: PoolDep) -> DoNotDisturb:
    """Switch a user's own do-not-disturb off (backend ``directory:write``)."""
    return await _delete_dnd(pool, access.tenant_id, _subject(access, user_id))


# ---------------------------------------------------------------- quiet hours


async def _get_quiet(pool: PoolDep, tenant: str, user_id: str) -> QuietHoursIn:
    async with pool.acquire() as conn:
        person = await _person(conn, tenant, user_id)
    return QuietHoursIn(rules=list(person.quiet_hours))


async def _put_quiet(
    pool: PoolDep, client: Client, tenant: str, user_id: str, body: QuietHoursIn
) -> QuietHoursIn:
    async with transaction(pool) as conn:
        await _person(conn, tenant, user_id)
        await availability.put_quiet_hours(conn, qualify(tenant, user_id), body.rules)
    await notify_plan_changed(client, pool, tenant, f"user {user_id} quiet hours changed", user_id=user_id)
    return await _get_quiet(pool, tenant, user_id)


@router.get("/v1/me/quiet-hours", response_model=QuietHoursIn, responses=_PROBLEMS)
async def get_my_quiet_hours(ident: PartyIdentityDep, pool: PoolDep) -> QuietHoursIn:
    """The token's resident's weekly quiet hours."""
    me = _me(ident)
    return await _get_quiet(pool, me.tenant_id, ident.party.id)


@router.put("/v1/me/quiet-hours", response_model=QuietHoursIn, responses=_PROBLEMS)
async def put_my_quiet_hours(
    body: QuietHoursIn, ident: PartyIdentityDep, pool: PoolDep, client: TemporalDep
) -> QuietHoursIn:
    """Replace the resident's weekly quiet hours (``[]``: none). 422 ``validation`` on a bad
    rule (same start and end, unknown time zone, a day twice, more than 14 rules)."""
    me = _me(ident)
    return await _put_quiet(pool, client, me.tenant_id, ident.party.id, body)


@router.get("/v1/users/{user_id}/quiet-hours", response_model=QuietHoursIn, responses=_PROBLEMS)
async def get_quiet_hours(user_id: str, access: Read, pool: PoolDep) -> QuietHoursIn:
    """A user's weekly quiet hours (backend ``directory:read``, or the user's own token)."""
    return await _get_quiet(pool, access.tenant_id, _subject(access, user_id))


@router.put("/v1/users/{user_id}/quiet-hours", response_model=QuietHoursIn, responses=_PROBLEMS)
async def put_quiet_hours(
    user_id: str, body: QuietHoursIn, access: Write, pool: PoolDep, client: TemporalDep
) -> QuietHoursIn:
    """Replace a user's weekly quiet hours (backend ``directory:write``). 422 as the resident's."""
    return await _put_quiet(pool, client, access.tenant_id, _subject(access, user_id), body)


# ---------------------------------------------------------------- presence


async def presence_of(conn: Conn, tenant: str, user_id: str, at: datetime) -> Presence:
    """User ``user_id``'s :class:`Presence` at ``at`` (``ringflow.availability.presence`` over
    the stored away and the line claim of any of the tenant's sites); 404 when unknown."""
    person = await _person(conn, tenant, user_id)
    held = await availability.line_call(conn, user_id, tenant=tenant)
    return rules.presence(person, at, unqualified(held) if held is not None else None)


async def _get_presence(pool: PoolDep, tenant: str, user_id: str) -> Presence:
    async with pool.acquire() as conn:
        return await presence_of(conn, tenant, user_id, datetime.now(UTC))


async def _put_presence(
    pool: PoolDep, client: Client, tenant: str, user_id: str, body: PresenceIn
) -> Presence:
    """Set away/available and push the new presence to the person's own clients (the outbox
    row in the same transaction: ``call_id`` empty, ``payload`` the :class:`Presence`)."""
    _check_until(body.until)
    async with transaction(pool) as conn:
        await _person(conn, tenant, user_id)
        key = qualify(tenant, user_id)
        if body.status is PresenceStatus.AWAY:
            await availability.set_away(conn, key, body.until)
        else:
            await availability.clear_away(conn, key)
        now = datetime.now(UTC)
        presence = await presence_of(conn, tenant, user_id, now)
        await outbox.insert(
            conn,
            [
                PushMessage(
                    id=f"presence:{key}:{uuid.uuid4().hex}",
                    recipient=Party(kind=PartyKind.USER, id=user_id),
                    type=PushType.PRESENCE,
                    call_id=qualify(tenant, ""),  # no call: the tenant of the recipient (outbox.insert)
                    at=now,
                    payload=presence.model_dump(mode="json"),
                )
            ],
        )
    await notify_plan_changed(client, pool, tenant, f"user {user_id} {body.status.value}", user_id=user_id)
    return presence


@router.get("/v1/me/presence", response_model=Presence, responses=_PROBLEMS)
async def get_my_presence(ident: PartyIdentityDep, pool: PoolDep) -> Presence:
    """The token's resident's presence (one across all the tenant's sites)."""
    me = _me(ident)
    return await _get_presence(pool, me.tenant_id, ident.party.id)


@router.put("/v1/me/presence", response_model=Presence, responses=_PROBLEMS)
async def put_my_presence(
    body: PresenceIn, ident: PartyIdentityDep, pool: PoolDep, client: TemporalDep
) -> Presence:
    """Set the resident ``away`` (until ``until``, UTC, at most 30 days ahead; null = until set
    back) or ``available``; pushes ``presence`` to their clients. 422 ``validation``: ``in_call``
    (derived), ``until`` with ``available`` or out of range."""
    me = _me(ident)
    return await _put_presence(pool, client, me.tenant_id, ident.party.id, body)


@router.get("/v1/users/{user_id}/presence", response_model=Presence, responses=_PROBLEMS)
async def get_presence(user_id: str, access: Read, pool: PoolDep) -> Presence:
    """A user's presence across the tenant's sites (backend ``directory:read``, or the user's
    own token): ``in_call`` while their line is held (ringing or talking), else ``away`` /
    ``available``."""
    return await _get_presence(pool, access.tenant_id, _subject(access, user_id))


@router.put("/v1/users/{user_id}/presence", response_model=Presence, responses=_PROBLEMS)
async def put_presence(
    user_id: str, body: PresenceIn, access: Write, pool: PoolDep, client: TemporalDep
) -> Presence:
    """Set a user ``away``/``available`` (backend ``directory:write``, or the user's own token);
    pushes ``presence`` to the user's clients. 422 as ``PUT /v1/me/presence``."""
    return await _put_presence(pool, client, access.tenant_id, _subject(access, user_id), body)

"""``/v1/me``: what a party (device or resident app, bearer token) may read about itself.

- ``GET /v1/me/calls?limit=&cursor=``: the party's calls, newest first, as caller or
  as a rung listener (without attempts and events; ``GET /v1/calls/{call_id}`` shows one
  in full), paged like ``GET /v1/calls``. A missed call shows ``follow_up_until`` (its
  follow-up window) and ``has_snapshot``.
- ``POST /v1/me/calls/{call_id}/call-back`` and ``/open-door`` (issue 10 item 4): a resident
  rung by a missed call acts inside its follow-up window (workflow updates ``call_back`` /
  ``open_door``; the window and the policy are the workflow's to decide).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.admission import AdmissionDep
from api.deps import Access, PartyIdentityDep, PoolDep, SettingsDep, TemporalDep
from api.problems import Problem, problem_responses
from api.routers.calls import CallCreated, CallList, place_call, run_update
from ringflow.contracts.calls import CallBackResult, CallCreate, CustomActionResult, FollowUpInput
from ringflow.contracts.common import Identifier, PartyKind
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.messages import Update
from ringflow.contracts.tenancy import qualify
from store import calls as store

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get("/calls", response_model=CallList)
async def my_calls(
    ident: PartyIdentityDep,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CallList:
    """The token's party's call history, newest first (caller or listener). A cursor this
    API did not make is 422 ``validation`` (1010); a missing/bad token 401 (1011). Only the
    token's tenant's calls (issue 9)."""
    party = ident.party
    device = party.id if party.kind is PartyKind.DEVICE else None
    user = party.id if party.kind is PartyKind.USER else None
    try:
        items, next_cursor = await store.list_calls(
            pool,
            store.CallFilter(device=device, user=user, limit=limit, cursor=cursor, tenant_id=ident.tenant_id),
        )
    except ValueError as e:
        raise Problem(422, "validation", "Invalid request", str(e), ErrCode.VALIDATION) from e
    return CallList(items=items, next_cursor=next_cursor)


_FOLLOW_UP_PROBLEMS = problem_responses(
    403,
    404,
    409,
    503,
    descriptions={
        403: "`not-a-party` (1007): not rung by this call; `follow-up-not-allowed` (1016): the policy"
        " does not allow opening after a miss",
        409: "`follow-up-closed` / `call-not-active` (1006): no open follow-up window",
    },
)


@router.post(
    "/calls/{call_id}/call-back", status_code=201, response_model=CallCreated, responses=_FOLLOW_UP_PROBLEMS
)
async def call_back(
    call_id: Identifier,
    ident: PartyIdentityDep,
    response: Response,
    settings: SettingsDep,
    pool: PoolDep,
    client: TemporalDep,
    admission: AdmissionDep,
) -> CallCreated:
    """Call the door of missed call ``call_id`` back (issue 10 item 4): the call accepts it
    inside its follow-up window from a resident it rang (``callBack`` recorded in THAT call),
    then a new call from the resident to the door device starts as ``POST /v1/calls`` would
    place it (id ``"<call_id>-cb<n>"``); the door answers by itself where its directory entry
    says ``auto_answer`` (reference phone-calls-device). 201 with the new call; the problems of
    the follow-up (above) and of ``POST /v1/calls``."""
    accepted = await run_update(
        client,
        qualify(ident.tenant_id, call_id),
        Update.CALL_BACK,
        FollowUpInput(party=ident.party),
        CallBackResult,
    )
    body = CallCreate(caller=ident.party, callees=[accepted.door])
    access = Access(tenant_id=ident.tenant_id, party=ident.party)
    return await place_call(body, accepted.new_call_id, access, response, settings, pool, client, admission)


@router.post("/calls/{call_id}/open-door", response_model=CustomActionResult, responses=_FOLLOW_UP_PROBLEMS)
async def open_door(call_id: Identifier, ident: PartyIdentityDep, client: TemporalDep) -> CustomActionResult:
    """Open the door of missed call ``call_id`` remotely (issue 10 item 4), inside its follow-up
    window, when the unit's policy says ``remote_open_after_miss``: audited as THAT call's
    in-call action (``customAction`` with ``after_miss``, then ``customActionResult``), acked by
    the door as in talk. Answers the settled action; 422 ``unknown-action`` (1014) when the door
    does not offer ``open_door``; the follow-up problems above."""
    return await run_update(
        client,
        qualify(ident.tenant_id, call_id),
        Update.OPEN_DOOR,
        FollowUpInput(party=ident.party),
        CustomActionResult,
    )

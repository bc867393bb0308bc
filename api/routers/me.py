"""``/v1/me``: what a party (device or resident app, bearer token) may read about itself.

- ``GET /v1/me/calls?limit=&cursor=``: the party's calls, newest first, as caller or
  as a rung listener (without attempts and events; ``GET /v1/calls/{call_id}`` shows one
  in full), paged like ``GET /v1/calls``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PartyIdentityDep, PoolDep
from api.problems import Problem
from api.routers.calls import CallList
from ringflow.contracts.common import PartyKind
from ringflow.contracts.errors import ErrCode
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

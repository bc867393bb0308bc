"""``POST /v1/tokens``: the backend issues party tokens for devices and resident apps.

The token carries the key's tenant (issue 9): its party acts on and hears of that tenant's
calls only. A token for a device or user that is not in the tenant's directory is refused
(404 ``not-found``, as for any unknown id: another tenant's party is unknown too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from api import tokens
from api.deps import Principal, SettingsDep, require_scopes
from api.problems import not_found, problem_responses
from ringflow.contracts.common import Contract, Party, PartyKind
from ringflow.contracts.tenancy import Scope
from store import directory

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenRequest(Contract):
    """A token for ``party``, valid ``ttl_s`` seconds (1 s to 30 days)."""

    party: Party
    ttl_s: float = Field(86400.0, ge=1, le=30 * 86400)


class TokenResponse(Contract):
    """The bearer token and when it expires (UTC)."""

    token: str
    expires_at: datetime


@router.post("", status_code=201, responses=problem_responses(404))
async def issue_token(
    body: TokenRequest,
    who: Annotated[Principal, Depends(require_scopes(Scope.CALLS_WRITE))],
    settings: SettingsDep,
    request: Request,
) -> TokenResponse:
    """Issue a party token (HS256 JWT) of the key's tenant. Backend only (X-API-Key with
    ``calls:write``). 404 ``not-found`` (errCode 1008) when the device or user is not in the
    tenant's directory."""
    party = body.party
    async with request.app.state.pool.acquire() as conn:  # after the body is valid (no pool: 422 first)
        if party.kind is PartyKind.DEVICE:
            found = await directory.find_device(conn, party.id, tenant=who.tenant_id) is not None
        else:
            found = await directory.find_user(conn, party.id, tenant=who.tenant_id) is not None
    if not found:
        raise not_found(party.kind.value, party.id)
    token, exp = tokens.issue(party, settings.token_secret, body.ttl_s, tenant_id=who.tenant_id)
    return TokenResponse(token=token, expires_at=exp)

"""``POST /v1/tokens``: the backend issues party tokens for devices and resident apps."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from api import tokens
from api.deps import BackendAuth, SettingsDep
from ringflow.contracts.common import Contract, Party

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=[BackendAuth])


class TokenRequest(Contract):
    """A token for ``party``, valid ``ttl_s`` seconds (1 s to 30 days)."""

    party: Party
    ttl_s: float = Field(86400.0, ge=1, le=30 * 86400)


class TokenResponse(Contract):
    """The bearer token and when it expires (UTC)."""

    token: str
    expires_at: datetime


@router.post("", status_code=201)
async def issue_token(body: TokenRequest, settings: SettingsDep) -> TokenResponse:
    """Issue a party token (HS256 JWT). Backend only (X-API-Key)."""
    token, exp = tokens.issue(body.party, settings.token_secret, body.ttl_s)
    return TokenResponse(token=token, expires_at=exp)

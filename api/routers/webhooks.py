"""Webhook endpoints of the key's tenant (scope ``webhooks:admin``; docs/webhooks.md).

- ``POST /v1/webhooks``: a new endpoint; its secret (``whsec_...``) is in this answer only.
- ``GET /v1/webhooks``, ``GET/PATCH/DELETE /v1/webhooks/{webhook_id}``: read, change
  (``rotate_secret: true`` answers the new secret), delete.
- ``GET /v1/webhooks/{webhook_id}/deliveries``: deliveries newest first with their attempts
  (status code, error, latency) and the next retry.
- ``POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver``: send it again now.

Another tenant's endpoint or delivery is 404 ``not-found`` (existence is not leaked).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.deps import PoolDep, Principal, SettingsDep, require_scopes
from api.problems import Problem, not_found, problem_responses
from ringflow import webhook_urls
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import Scope
from ringflow.contracts.webhooks import (
    DeliveryList,
    DeliveryState,
    DeliveryView,
    WebhookCreate,
    WebhookList,
    WebhookUpdate,
    WebhookView,
)
from ringflow.settings import Settings
from store import webhooks as store

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Admin = Annotated[Principal, Depends(require_scopes(Scope.WEBHOOKS_ADMIN))]

_NOT_FOUND = problem_responses(404)


def _check_url(url: str, settings: Settings) -> None:
    """422 ``validation`` when ``url`` points outside ``RINGFLOW_WEBHOOK_ALLOWED_NETWORKS``."""
    problem = webhook_urls.registration_problem(url, webhook_urls.networks(settings.webhook_allowed_networks))
    if problem is not None:
        raise Problem(422, "validation", "Invalid request", f"url: {problem}", ErrCode.VALIDATION)


@router.post("", response_model=WebhookView, status_code=201)
async def create_webhook(
    body: WebhookCreate, who: Admin, pool: PoolDep, settings: SettingsDep
) -> WebhookView:
    """Register an endpoint: ``url`` (http/https, its address in
    ``RINGFLOW_WEBHOOK_ALLOWED_NETWORKS``, else 422 ``validation``), ``event_types`` (empty:
    every type), ``description``, ``enabled``. The answer carries the signing ``secret``
    (Standard Webhooks ``whsec_...``): keep it, it is not shown again (rotate with PATCH)."""
    _check_url(str(body.url), settings)
    return await store.create(pool, who.tenant_id, body)


@router.get("", response_model=WebhookList)
async def list_webhooks(who: Admin, pool: PoolDep) -> WebhookList:
    """The tenant's endpoints, oldest first (no secrets)."""
    return WebhookList(items=await store.list_endpoints(pool, who.tenant_id))


@router.get("/{webhook_id}", response_model=WebhookView, responses=_NOT_FOUND)
async def get_webhook(webhook_id: str, who: Admin, pool: PoolDep) -> WebhookView:
    """One endpoint (no secret): enabled, and why not (``disabled_reason``), its failure streak."""
    view = await store.get(pool, who.tenant_id, webhook_id)
    if view is None:
        raise not_found("webhook", webhook_id)
    return view


@router.patch("/{webhook_id}", response_model=WebhookView, responses=_NOT_FOUND)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, who: Admin, pool: PoolDep, settings: SettingsDep
) -> WebhookView:
    """Change the given fields (a new ``url`` as on create). ``enabled: true`` re-enables an
    endpoint disabled for failing (its pending deliveries go out again); ``rotate_secret:
    true`` answers a new ``secret``, and the old one keeps signing beside it for
    ``RINGFLOW_WEBHOOK_SECRET_OVERLAP_S``."""
    if body.url is not None:
        _check_url(str(body.url), settings)
    async with pool.acquire() as conn, conn.transaction():
        view = await store.update(
            conn, who.tenant_id, webhook_id, body, timedelta(seconds=settings.webhook_secret_overlap_s)
        )
    if view is None:
        raise not_found("webhook", webhook_id)
    return view


@router.delete("/{webhook_id}", status_code=204, responses=_NOT_FOUND)
async def delete_webhook(webhook_id: str, who: Admin, pool: PoolDep) -> Response:
    """Delete the endpoint and its deliveries (pending ones are not sent)."""
    if not await store.delete(pool, who.tenant_id, webhook_id):
        raise not_found("webhook", webhook_id)
    return Response(status_code=204)


def _encode(created_at: datetime, delivery_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), delivery_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(ident)
    except (binascii.Error, ValueError, TypeError) as e:
        raise Problem(422, "validation", "Invalid request", "invalid cursor", ErrCode.VALIDATION) from e


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList, responses=_NOT_FOUND)
async def list_deliveries(
    webhook_id: str,
    who: Admin,
    pool: PoolDep,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeliveryList:
    """The endpoint's deliveries, newest first, optionally of one ``state``: each with its
    attempts (``history``: status code, error, latency), ``next_attempt_at`` while pending.
    Page with ``cursor`` = the previous page's ``next_cursor`` (another is 422 ``validation``)."""
    before = _decode(cursor) if cursor else None
    if await store.get(pool, who.tenant_id, webhook_id) is None:
        raise not_found("webhook", webhook_id)
    items = await store.list_deliveries(pool, who.tenant_id, webhook_id, limit + 1, before, state)
    next_cursor = _encode(items[limit - 1].created_at, items[limit - 1].id) if len(items) > limit else None
    return DeliveryList(items=items[:limit], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryView,
    status_code=202,
    responses=_NOT_FOUND,
)
async def redeliver(webhook_id: str, delivery_id: str, who: Admin, pool: PoolDep) -> DeliveryView:
    """Send the delivery again as soon as possible (same event, same ``webhook-id``: a
    receiver that de-duplicates ignores it), whatever its state, with a new retry window;
    202 with the delivery (``pending``)."""
    async with pool.acquire() as conn:
        view = await store.redeliver(conn, who.tenant_id, webhook_id, delivery_id)
    if view is None:
        raise not_found("delivery", delivery_id)
    return view

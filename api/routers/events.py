"""The event feed of the key's tenant (scope ``calls:read``; docs/webhooks.md): the same
domain events as the webhooks, for backends that prefer pulling and for dashboards.

- ``GET /v1/events?after=CURSOR&limit=N``: events by ``seq``; ``next_cursor`` continues.
- ``GET /v1/events/stream``: Server-Sent Events of the same feed, each with ``id:`` = its
  cursor, so a reconnecting ``EventSource`` resumes after the last one it got
  (``Last-Event-ID``, or ``?after=``); live with ``Accept: text/event-stream``, else it ends
  after the events already stored. New events are polled every ``POLL_S`` seconds; a
  comment line every ``KEEPALIVE_S`` keeps proxies from closing an idle stream.

At least once: the cursor is the last ``seq`` read, and a tenant's ``seq`` increases in
commit order (``store/feed.py``), so no event appears behind a cursor already handed out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import PoolDep, Principal, require_scopes
from api.problems import Problem, problem_responses
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import Scope
from ringflow.contracts.webhooks import EventPage
from store import feed

router = APIRouter(prefix="/v1/events", tags=["events"])

Reader = Annotated[Principal, Depends(require_scopes(Scope.CALLS_READ))]
Cursor = Annotated[
    str | None, Query(max_length=128, description="a next_cursor (or SSE id); none: from the start")
]

POLL_S = 0.5
"""How often the stream looks for new events, seconds."""
KEEPALIVE_S = 15.0
"""Longest silence on the stream before a comment line, seconds."""
STREAM_BATCH = 200
"""Most events the stream reads at once."""


def _after(cursor: str | None) -> int:
    try:
        return feed.decode_cursor(cursor)
    except ValueError as e:
        raise Problem(422, "validation", "Invalid request", "invalid cursor", ErrCode.VALIDATION) from e


@router.get("", response_model=EventPage)
async def list_events(
    who: Reader,
    pool: PoolDep,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """The tenant's events after ``after`` (a previous ``next_cursor``; none: the oldest), by
    ``seq``, at most ``limit``. ``next_cursor`` is always set: poll again with it to get what
    comes next. A cursor this API did not make is 422 ``validation`` (errCode 1010)."""
    after_seq = _after(after)
    items = await feed.page(pool, who.tenant_id, after_seq, limit)
    return EventPage(items=items, next_cursor=feed.encode_cursor(items[-1].seq if items else after_seq))


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "``text/event-stream``: ``id: <cursor>``, ``event: <type>``, ``data: <Event>``",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(422),
    },
)
async def stream_events(
    request: Request,
    who: Reader,
    pool: PoolDep,
    after: Cursor = None,
    last_event_id: Annotated[str | None, Header(max_length=128)] = None,
    accept: Annotated[str | None, Header(max_length=1024)] = None,
) -> StreamingResponse:
    """Server-Sent Events of the feed: every event after ``Last-Event-ID`` (an
    ``EventSource`` sends it when it reconnects) or ``after``, then new ones as they come.
    Each message: ``id`` its cursor, ``event`` its type, ``data`` the event (as in
    ``GET /v1/events``). Live only with ``Accept: text/event-stream`` (what an
    ``EventSource`` sends); without it the response ends after the events stored."""
    after_seq = _after(last_event_id or after)
    tenant = who.tenant_id
    # EventSource always asks for text/event-stream; another client (curl, a generic HTTP
    # tool, an API fuzzer) gets what is stored, then the end of the response
    live = "text/event-stream" in (accept or "")

    async def messages() -> AsyncIterator[str]:
        nonlocal after_seq
        yield "retry: 2000\n\n"
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            items = await feed.page(pool, tenant, after_seq, STREAM_BATCH)
            for ev in items:
                after_seq = ev.seq
                body = json.dumps(ev.model_dump(mode="json"), separators=(",", ":"))
                yield f"id: {feed.encode_cursor(ev.seq)}\nevent: {ev.type.value}\ndata: {body}\n\n"
            if items:
                quiet_since = time.monotonic()
                if len(items) == STREAM_BATCH:
                    continue
            if not live:
                return
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

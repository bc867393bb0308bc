"""``store_snapshot`` (issue 10 item 4): at a missed call, fetch the visitor snapshot the
media bridge decoded from the door's early-media video (``media/snapshot.py``, bridge control
``GET /rooms/{call_id}/snapshot``) and store it WITH the call in PostgreSQL
(``store.calls.store_snapshot``, table ``call_snapshots``), so that it outlives the bridge node.

Idempotent (the row is written once). Errors: a transport error or a 5xx answer raises
``httpx.HTTPError`` (retried by the workflow's ``MEDIA_RETRY``); a 404 (no room, no picture
in time, a voice call) returns False; any other status or a body that is not ``image/jpeg``
raises the non-retryable ``ApplicationError`` ``MediaBridgeRefused``.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.media import MediaActivities
from ringflow.contracts.calls import STORE_SNAPSHOT
from store import calls


class SnapshotActivities:
    """``store_snapshot`` over one asyncpg pool and the media activities (``MediaActivities``:
    their HTTP client with ``X-API-Key`` and timeout, and :meth:`MediaActivities.room_url`, the
    node that held the room: ``store/media_nodes.py``, else ``settings.media_url``)."""

    def __init__(self, pool: asyncpg.Pool, media: MediaActivities) -> None:
        self.pool = pool
        self.media = media

    @activity.defn(name=STORE_SNAPSHOT)
    async def store_snapshot(self, call_id: str) -> bool:
        """Store the bridge's snapshot of room ``call_id`` (the call's workflow id) with the
        call; True when one is stored, False when the bridge has none. Raises as the module
        docstring says."""
        url = await self.media.room_url(call_id)
        r = await self.media.http.get(f"{url}/rooms/{call_id}/snapshot")
        if r.status_code == 404:
            return False
        if r.status_code >= 500:
            r.raise_for_status()
        if r.status_code != 200 or r.headers.get("content-type") != "image/jpeg":
            raise ApplicationError(
                f"media bridge answered {r.status_code} {r.headers.get('content-type')!r} for the snapshot",
                type="MediaBridgeRefused",
                non_retryable=True,
            )
        await calls.store_snapshot(self.pool, call_id, r.content)
        return True

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.store_snapshot]

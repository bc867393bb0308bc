"""Media activities: the call workflows' control of the media bridge (``docs/media.md``).

``connect`` makes the listener who answered the talker of the building call's media room
(bridge control ``PUT /rooms/{call_id}/talker``, ``media/server.py``), before the
workflow records ``answered``; ``close_room`` closes the room at the end of the building
call and returns its traffic and recording (``DELETE /rooms/{call_id}``).

Which bridge (issue 13 item 3): with a ``pool`` and registered bridge nodes
(``store/media_nodes.py``), ``connect`` places the room on the least loaded live node (or
keeps it where it is, if that node is live; a room whose node died moves) and answers the
``MediaPlacement``; ``close_room`` goes to the node that holds the room and marks it
closed. With no registered node (or no pool) both use ``settings.media_url``, as before,
and ``connect`` answers None. Nodes registered but none live: ``connect`` fails with the
non-retryable ``NoMediaNode``.

Both are idempotent (the same talker again changes nothing; a room closed lately answers
its final stats again), so Temporal may retry them freely. Errors: a transport error
(bridge down, timeout) or a 5xx answer raises ``httpx.HTTPError``, which Temporal
retries by the activity's retry policy; a 4xx answer (a request the bridge refuses,
which a retry would not change) raises a non-retryable ``ApplicationError`` of type
``MediaBridgeRefused``.
"""

from __future__ import annotations

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from media.models import TalkerUpdate
from ringflow.contracts.media import (
    MEDIA_CLOSE_ROOM,
    MEDIA_CONNECT,
    MediaConnectInput,
    MediaPlacement,
    RoomStats,
)
from ringflow.settings import Settings
from store import media_nodes


class MediaActivities:
    """The media activities over one ``httpx.AsyncClient`` (header ``X-API-Key`` =
    ``settings.api_key``, timeout ``settings.media_request_timeout_s``) to the room's node
    (``pool``: the node registry; None: always ``settings.media_url``). Close with
    :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        pool: asyncpg.Pool | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.http = httpx.AsyncClient(
            headers={"X-API-Key": settings.api_key},
            timeout=settings.media_request_timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def room_url(self, call_id: str) -> str:
        """The control URL of the node that holds (or held) room ``call_id``; ``settings.media_url``
        without a registry or a placement. Not an activity (``store_snapshot`` asks it)."""
        url, _ = await media_nodes.room_url(
            self.pool, call_id, self.settings.media_url, self.settings.media_node_expiry_s, place=False
        )
        return url

    @activity.defn(name=MEDIA_CONNECT)
    async def connect(self, inp: MediaConnectInput) -> MediaPlacement | None:
        """Make ``inp.listener`` the talker of room ``inp.call_id`` (created if no party has
        offered yet, on the node the registry places it on), recording the talk when
        ``inp.record``: from now on the caller and the listener hear and see each other. The
        node that holds the room (None without a registry). Raises as the module docstring says."""
        try:
            url, placement = await media_nodes.room_url(
                self.pool, inp.call_id, self.settings.media_url, self.settings.media_node_expiry_s, place=True
            )
        except media_nodes.NoMediaNode as e:
            raise ApplicationError(str(e), type="NoMediaNode", non_retryable=True) from e
        r = await self.http.put(
            f"{url}/rooms/{inp.call_id}/talker",
            json=TalkerUpdate(party=inp.listener, record=inp.record).model_dump(mode="json"),
        )
        _raise_for(r)
        if placement is None:
            return None
        return MediaPlacement(node_id=placement.node_id, moves=placement.moves)

    @activity.defn(name=MEDIA_CLOSE_ROOM)
    async def close_room(self, call_id: str) -> RoomStats | None:
        """Close room ``call_id`` and its peers; its final ``RoomStats`` (traffic per party,
        recording path), or None when the bridge has no such room (no party ever offered,
        or the bridge restarted). Raises as the module docstring says."""
        url, placement = await media_nodes.room_url(
            self.pool, call_id, self.settings.media_url, self.settings.media_node_expiry_s, place=False
        )
        r = await self.http.delete(f"{url}/rooms/{call_id}")
        if placement is not None and self.pool is not None:
            await media_nodes.close_room(self.pool, call_id)
        if r.status_code == 404:
            return None
        _raise_for(r)
        return RoomStats.model_validate_json(r.content)

    def all(self) -> list:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.connect, self.close_room]


def _raise_for(r: httpx.Response) -> None:
    """Nothing for 2xx; ``httpx.HTTPStatusError`` (retried) for 5xx; a non-retryable
    ``ApplicationError`` ``MediaBridgeRefused`` for any other status."""
    if r.is_success:
        return
    if r.status_code >= 500:
        r.raise_for_status()
    raise ApplicationError(
        f"media bridge refused {r.request.method} {r.request.url.path}: {r.status_code} {r.text[:500]}",
        type="MediaBridgeRefused",
        non_retryable=True,
    )

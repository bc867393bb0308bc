"""Media activities: the call workflows' control of the media bridge (``docs/media.md``).

``connect`` makes the listener who answered the talker of the building call's media room
(bridge control ``PUT /rooms/{call_id}/talker``, ``media/server.py``), before the
workflow records ``answered``; ``close_room`` closes the room at the end of the building
call and returns its traffic and recording (``DELETE /rooms/{call_id}``).

Both are idempotent (the same talker again changes nothing; a room closed lately answers
its final stats again), so Temporal may retry them freely. Errors: a transport error
(bridge down, timeout) or a 5xx answer raises ``httpx.HTTPError``, which Temporal
retries by the activity's retry policy; a 4xx answer (a request the bridge refuses,
which a retry would not change) raises a non-retryable ``ApplicationError`` of type
``MediaBridgeRefused``.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from media.models import TalkerUpdate
from ringflow.contracts.media import MEDIA_CLOSE_ROOM, MEDIA_CONNECT, MediaConnectInput, RoomStats
from ringflow.settings import Settings


class MediaActivities:
    """The media activities over one ``httpx.AsyncClient`` to ``settings.media_url`` (header
    ``X-API-Key`` = ``settings.api_key``, timeout ``settings.media_request_timeout_s``).
    Close with :meth:`aclose`."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=settings.media_url,
            headers={"X-API-Key": settings.api_key},
            timeout=settings.media_request_timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    @activity.defn(name=MEDIA_CONNECT)
    async def connect(self, inp: MediaConnectInput) -> None:
        """Make ``inp.listener`` the talker of room ``inp.call_id`` (created if no party has
        offered yet), recording the talk when ``inp.record``: from now on the caller and the
        listener hear and see each other. Raises as the module docstring says."""
        r = await self.http.put(
            f"/rooms/{inp.call_id}/talker",
            json=TalkerUpdate(party=inp.listener, record=inp.record).model_dump(mode="json"),
        )
        _raise_for(r)

    @activity.defn(name=MEDIA_CLOSE_ROOM)
    async def close_room(self, call_id: str) -> RoomStats | None:
        """Close room ``call_id`` and its peers; its final ``RoomStats`` (traffic per party,
        recording path), or None when the bridge has no such room (no party ever offered,
        or the bridge restarted). Raises as the module docstring says."""
        r = await self.http.delete(f"/rooms/{call_id}")
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

"""A real ringflow client: a party (resident app or device) on the push channel and REST.

Used by the demo, the agents (``ringflow/agent.py``), the integration tests and the
benchmarks, so that each drives ringflow exactly as a device or a resident app does: a
WebSocket to ``/v1/push?token=...`` (messages acknowledged by id, de-duplicated by id
across reconnects) and the party's REST actions with its bearer token: answer, reject,
hang up, place a call (a device for itself, or a resident calling a device), the SDP
offer of its media room, in-call actions and their acknowledgement, its own calls
(``docs/media.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from ringflow.contracts.common import Party
from ringflow.contracts.errors import problem_slug


@dataclass
class Received:
    """A push message as received: the frame plus ``received_at`` (``time.monotonic()``, seconds)."""

    frame: dict[str, Any]
    received_at: float

    @property
    def type(self) -> str:
        return str(self.frame.get("type"))

    @property
    def call_id(self) -> str | None:
        return self.frame.get("call_id")


class ApiError(Exception):
    """A 4xx/5xx answer of the API: ``status``, the problem ``type`` slug (``not-a-party``,
    ``call-not-active``, ...: :func:`~ringflow.contracts.errors.problem_slug`), ``detail``,
    ``err_code`` and the whole problem document ``doc`` (RFC 9457; ``{}`` if not JSON)."""

    def __init__(self, status: int, doc: dict[str, Any], what: str) -> None:
        self.status = status
        self.doc = doc
        self.type = problem_slug(str(doc.get("type", "")))
        self.detail = doc.get("detail")
        self.err_code: int | None = doc.get("errCode")
        super().__init__(f"{what}: {status} {self.type or ''} {self.detail or ''}".strip())


def checked(r: httpx.Response, what: str) -> dict[str, Any]:
    """``r``'s JSON body when it is a success, else raise :class:`ApiError`."""
    if r.is_success:
        return dict(r.json()) if r.content else {}
    try:
        doc = r.json()
    except ValueError:
        doc = {"detail": r.text[:200]}
    raise ApiError(r.status_code, doc if isinstance(doc, dict) else {"detail": str(doc)}, what)


Handler = Callable[["PartyClient", Received], Coroutine[Any, Any, None]]


@dataclass
class PartyClient:
    """One party connected to ringflow.

    ``base_url``: the API (``http://127.0.0.1:8080``); ``token``: the party's
    bearer token. ``on_message`` runs for every new message (after
    de-duplication), e.g. to answer incoming calls. Connection loss is retried
    every ``retry_s`` seconds until :meth:`close`.
    """

    base_url: str
    party: Party
    token: str
    on_message: Handler | None = None
    retry_s: float = 0.2
    http_timeout_s: float = 30.0  # an in-call action waits for the device's ack (docs/media.md: 5 s)
    received: list[Received] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _new: asyncio.Condition = field(default_factory=asyncio.Condition)
    _http: httpx.AsyncClient | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + f"/v1/push?token={self.token}"

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and keep the connection; returns once connected (raises ``TimeoutError``)."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=self.http_timeout_s,
        )
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def _run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.ws_url, max_size=2**20) as ws:
                    self._connected.set()
                    async for raw in ws:
                        frame = json.loads(raw)
                        msg_id = frame.get("id")
                        if msg_id is not None:
                            await ws.send(json.dumps({"ack": [msg_id]}))
                            if msg_id in self._seen:
                                continue
                            self._seen.add(msg_id)
                        rec = Received(frame, time.monotonic())
                        self.received.append(rec)
                        async with self._new:
                            self._new.notify_all()
                        if self.on_message is not None:
                            task = asyncio.create_task(self.on_message(self, rec))
                            self._handlers.add(task)
                            task.add_done_callback(self._handlers.discard)
            except (OSError, websockets.exceptions.WebSocketException):
                self._connected.clear()
            await asyncio.sleep(self.retry_s)

    async def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        """The first received message matching ``predicate`` (waits up to ``timeout`` s)."""

        async def find() -> Received:
            async with self._new:
                while True:
                    for rec in self.received:
                        if predicate(rec):
                            return rec
                    await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def action(self, call_id: str, name: str) -> httpx.Response:
        """POST ``/v1/calls/{call_id}/{name}`` (answer, reject, hang-up, cancel) as this party."""
        assert self._http is not None, "start() first"
        return await self._http.post(f"/v1/calls/{call_id}/{name}")

    @property
    def http(self) -> httpx.AsyncClient:
        """REST with this party's bearer token (after :meth:`start`)."""
        assert self._http is not None, "start() first"
        return self._http

    async def place_call(self, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        """``POST /v1/calls`` as this party (the body's ``caller`` must be this party, else
        403 ``not-a-party``) with ``Idempotency-Key`` (= the call id: a retry with the same
        key and body returns the same call, 200 instead of 201)."""
        return await self.http.post("/v1/calls", json=body, headers={"Idempotency-Key": idempotency_key})

    async def call(self, call_id: str) -> dict[str, Any]:
        """``GET /v1/calls/{call_id}``: a call this party is in, events included.
        Raises :class:`ApiError` (403 ``not-a-party``, 404)."""
        return checked(await self.http.get(f"/v1/calls/{call_id}"), f"GET call {call_id}")

    async def my_calls(self, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """``GET /v1/me/calls?limit=&cursor=``: ``{"items": [call views without events],
        "next_cursor"}``, the calls where this party is the caller or was rung, newest first
        (page on with ``cursor`` = the previous ``next_cursor``). Raises :class:`ApiError`."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return checked(await self.http.get("/v1/me/calls", params=params), "GET my calls")

    async def media_offer(self, call_id: str, sdp: str) -> str:
        """Post this party's complete SDP offer for call ``call_id``'s media room
        (``POST /v1/calls/{call_id}/media`` ``{"sdp", "type": "offer"}``) and return the
        bridge's SDP answer. Raises :class:`ApiError`: 404 unknown call, 403
        ``not-a-party``, 409 ``call-not-active``, 422 ``invalid-sdp``, 503 ``media-unavailable``."""
        r = await self.http.post(f"/v1/calls/{call_id}/media", json={"sdp": sdp, "type": "offer"})
        return str(checked(r, f"media offer {call_id}")["sdp"])

    async def ice_servers(self) -> list[dict[str, Any]]:
        """``GET /v1/media/ice-servers``: this party's ``RTCIceServer[]`` (``[{"urls": [...],
        "username"?, "credential"?}]``, TURN with an ephemeral credential; ringflow/ice.py),
        empty when the deployment has no STUN/TURN server. Raises :class:`ApiError`."""
        r = await self.http.get("/v1/media/ice-servers")
        return list(checked(r, "ICE servers")["ice_servers"])

    async def custom_action(self, call_id: str, action: str) -> httpx.Response:
        """``POST /v1/calls/{call_id}/actions`` ``{"action"}`` (e.g. ``open_door``) as the talking
        listener; 200 ``CustomActionResult`` once the device acknowledged or after the ack
        timeout (``result: "timeout"``); 403 ``not-a-party``, 409 ``call-not-active`` (not in
        talk), 422 ``unknown-action`` (errCode 1014). Reference FAQ 1.2 ``setCustomBtnText``."""
        return await self.http.post(f"/v1/calls/{call_id}/actions", json={"action": action})

    async def ack_action(self, call_id: str, action_id: str, ok: bool, detail: str = "") -> httpx.Response:
        """``POST /v1/calls/{call_id}/actions/{action_id}/ack`` ``{"ok", "detail"}`` as the
        caller device that received the ``custom_action`` push; 200 ``CustomActionResult``,
        404 unknown action, 409 ``action-settled``, 403 ``not-a-party``."""
        return await self.http.post(
            f"/v1/calls/{call_id}/actions/{action_id}/ack", json={"ok": ok, "detail": detail}
        )

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()


class Backend:
    """A property-management backend: REST with the API key (``X-API-Key``).

    ``base_url``: the API (``Settings.api_url``, e.g. ``http://127.0.0.1:8080``);
    ``timeout_s``: per request, seconds. Methods raise :class:`ApiError` for a 4xx/5xx
    answer and ``httpx.TransportError`` (``ConnectError``, ``TimeoutException``) when the
    API cannot be reached."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout_s)

    async def token(self, party: Party, ttl_s: float = 3600.0) -> str:
        """A bearer token for ``party`` (``POST /v1/tokens``), valid ``ttl_s`` seconds."""
        r = await self.http.post("/v1/tokens", json={"party": party.model_dump(mode="json"), "ttl_s": ttl_s})
        return str(checked(r, f"token for {party.key()}")["token"])

    async def place_call(self, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        """``POST /v1/calls`` with ``Idempotency-Key``."""
        return await self.http.post("/v1/calls", json=body, headers={"Idempotency-Key": idempotency_key})

    async def call(self, call_id: str) -> dict[str, Any]:
        """``GET /v1/calls/{call_id}``: the call view (``CallView`` as JSON: attempts, events).
        Raises :class:`ApiError` (404 ``not-found`` for an unknown call)."""
        return checked(await self.http.get(f"/v1/calls/{call_id}"), f"call {call_id}")

    async def calls(self, **filters: Any) -> dict[str, Any]:
        """``GET /v1/calls`` with ``filters`` (the route's query parameters: ``unit_id``,
        ``device``, ``user``, ``since``/``until`` (aware datetimes or ISO strings),
        ``end_reason``, ``phase``, ``limit``, ``cursor``; None values are left out):
        ``{"items": [call views without attempts and events], "next_cursor"}``, newest first.
        Raises :class:`ApiError` (422 for a bad filter or cursor)."""
        params = {
            k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in filters.items() if v is not None
        }
        return checked(await self.http.get("/v1/calls", params=params), "list calls")

    async def timeline_svg(self, call_id: str) -> str:
        """``GET /v1/calls/{call_id}/timeline.svg``: the call's timeline picture (SVG text).
        Raises :class:`ApiError`."""
        r = await self.http.get(f"/v1/calls/{call_id}/timeline.svg")
        if not r.is_success:
            checked(r, f"timeline of call {call_id}")  # raises
        return r.text

    async def device(self, sn: str) -> dict[str, Any]:
        """``GET /v1/devices/{sn}`` (``auto_answer``, ``actions``, ...). Raises :class:`ApiError`."""
        return checked(await self.http.get(f"/v1/devices/{sn}"), f"GET device {sn}")

    async def patch_device(self, sn: str, **fields: Any) -> dict[str, Any]:
        """``PATCH /v1/devices/{sn}`` with ``fields`` (``auto_answer=True``). Raises :class:`ApiError`."""
        return checked(await self.http.patch(f"/v1/devices/{sn}", json=fields), f"PATCH device {sn}")

    async def aclose(self) -> None:
        await self.http.aclose()

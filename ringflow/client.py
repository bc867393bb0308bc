"""A real ringflow client: a party (resident app or device) on the push channel and REST.

Used by the demo, the integration tests and the benchmarks, so that each drives
ringflow exactly as a device or a resident app does: a WebSocket to
``/v1/push?token=...`` (messages acknowledged by id, de-duplicated by id across
reconnects) and the party's REST actions with its bearer token.
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
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}
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

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()


class Backend:
    """A property-management backend: REST with the API key (``X-API-Key``)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": api_key}, timeout=30.0)

    async def token(self, party: Party, ttl_s: float = 3600.0) -> str:
        """A bearer token for ``party`` (``POST /v1/tokens``)."""
        r = await self.http.post("/v1/tokens", json={"party": party.model_dump(mode="json"), "ttl_s": ttl_s})
        r.raise_for_status()
        return str(r.json()["token"])

    async def place_call(self, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        """``POST /v1/calls`` with ``Idempotency-Key``."""
        return await self.http.post("/v1/calls", json=body, headers={"Idempotency-Key": idempotency_key})

    async def call(self, call_id: str) -> dict[str, Any]:
        """``GET /v1/calls/{call_id}`` (raises on 4xx/5xx)."""
        r = await self.http.get(f"/v1/calls/{call_id}")
        r.raise_for_status()
        return dict(r.json())

    async def aclose(self) -> None:
        await self.http.aclose()

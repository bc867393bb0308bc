"""A small webhook receiver: a real HTTP/1.1 server on 127.0.0.1 that checks each delivery's
Standard Webhooks signature (the ``standardwebhooks`` package) and de-duplicates by
``webhook-id``, as a backend should. The demo's backend (``ringflow/demo.py``) and the tests
(``tests/test_webhooks.py``) use it; tests also make it fail (``mode``): answer 500, hang past
the sender's timeout, refuse connections (its socket closed), and come back.

Not a production server: one request per connection, bodies up to 1 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Mode = Literal["ok", "fail", "hang", "refuse"]

MAX_BODY = 1 << 20


@dataclass
class Received:
    """One request received: its ``webhook-id``, whether its signature verified, the body
    (parsed JSON, or None), the status answered and the monotonic arrival time."""

    webhook_id: str
    verified: bool
    body: dict[str, Any] | None
    status: int
    at: float
    error: str | None = None

    @property
    def type(self) -> str | None:
        """The event type, from the body."""
        return None if self.body is None else self.body.get("type")

    @property
    def call_id(self) -> str | None:
        """The event's call, from the body."""
        return None if self.body is None else self.body.get("call_id")


@dataclass
class Receiver:
    """The server: ``await start()``, then ``url``; ``mode`` says how it answers (``ok``: 204;
    ``fail``: 500; ``hang``: never answers; ``refuse``: listening socket closed, set with
    :meth:`refuse` and undone with :meth:`resume`). ``secret`` checks signatures (None: not
    checked, every request counts as verified=False)."""

    secret: str | None = None
    mode: Mode = "ok"
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _hanging: set[asyncio.Task[Any]] = field(default_factory=set)
    _unhang: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Where to deliver: ``http://127.0.0.1:<port>/hooks``."""
        return f"http://{self.host}:{self.port}/hooks"

    async def start(self) -> Receiver:
        """Listen (a free port the first time, the same one after :meth:`resume`)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def refuse(self) -> None:
        """Close the listening socket: connections are refused until :meth:`resume`."""
        self.mode = "refuse"
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def resume(self, mode: Mode = "ok") -> None:
        """Listen again on the same port (after :meth:`refuse`) and answer by ``mode``."""
        self.mode = mode
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        """Close everything (hanging requests too)."""
        await self.refuse()
        self._unhang.set()  # hanging requests end without an answer

    def unique(self) -> dict[str, Received]:
        """Verified deliveries answered 2xx, de-duplicated by ``webhook-id`` (the first kept):
        what a backend processes."""
        out: dict[str, Received] = {}
        for r in self.received:
            if r.verified and 200 <= r.status < 300 and r.webhook_id not in out:
                out[r.webhook_id] = r
        return out

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Wait until ``predicate(self)`` is true (checked after each request); TimeoutError."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: predicate(self))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            length = min(int(headers.get("content-length", "0") or 0), MAX_BODY)
            body = await reader.readexactly(length) if length else b""
            mode = self.mode
            if mode == "hang":
                assert task is not None
                self._hanging.add(task)
                async with self._arrived:
                    self._arrived.notify_all()
                await self._unhang.wait()  # until stop(): the sender gives up long before
                return
            status = 204 if mode == "ok" else 500
            verified, parsed, error = False, None, None
            if self.secret is not None:
                try:
                    parsed = Webhook(self.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError as e:
                    error = str(e)
                    status = 400
            if parsed is None:
                with contextlib.suppress(ValueError):
                    parsed = json.loads(body)
            self.received.append(
                Received(headers.get("webhook-id", ""), verified, parsed, status, time.monotonic(), error)
            )
            reason = {204: "No Content", 400: "Bad Request", 500: "Internal Server Error"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            async with self._arrived:
                self._arrived.notify_all()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            if task is not None:
                self._hanging.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

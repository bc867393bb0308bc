"""The push hub: PostgreSQL LISTEN/NOTIFY -> WebSocket sessions.

Messages live in the outbox (``store/outbox.py``) until acknowledged; the hub only
decides WHEN a session looks at the outbox. One dedicated asyncpg connection
LISTENs on ``ringflow_push`` (payload = recipient key); a notification wakes the
sessions of that recipient, which then send their unacknowledged messages.

- On connect a session sends every unacknowledged message, so a client reconnecting
  after an API restart (or to another API process) gets everything still pending.
- A session remembers the ids it has sent and not seen acked, and skips them: it
  does NOT use a "highest seq sent" watermark, because ``seq`` is taken at insert and
  transactions commit in any order, so a lower seq can become visible after a higher.
- When the LISTEN connection is lost (PostgreSQL restart) the hub reconnects with
  backoff and then wakes every session (a notification may have been missed).
  A ping every :attr:`Hub.ping_s` seconds detects a half-open connection.

Traces (``ringflow/tracing.py``): with a tracer, each message sent that carries the
``traceparent`` of the activity that wrote it is sent inside a ``push <type>`` span (kind
producer) that is a child of that context, so a call's trace runs from its POST to the
pushes it caused; a message sent again (a reconnect) is another such span.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, WebSocket
from opentelemetry.trace import SpanKind, Tracer

from ringflow.tracing import context_of
from store import outbox

log = logging.getLogger(__name__)


class Session:
    """One WebSocket of one recipient (party key). :meth:`pump` sends pending messages
    whenever woken; :meth:`send` serialises every frame written to the socket."""

    def __init__(self, hub: Hub, recipient: str, websocket: WebSocket) -> None:
        self.hub = hub
        self.recipient = recipient
        self.websocket = websocket
        self.sent: set[str] = set()  # sent in this session, not acked yet
        self._wake = asyncio.Event()
        self._wake.set()  # first sync at once
        self._lock = asyncio.Lock()
        self.pump_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look at the outbox again (new message, or resync)."""
        self._wake.set()

    def acked(self, ids: Iterable[str]) -> None:
        """Forget acknowledged ids (they are no longer pending, so never fetched again)."""
        self.sent.difference_update(ids)

    async def send(self, frame: dict[str, Any]) -> None:
        """Write one JSON frame (the pump and the action replies share the socket)."""
        async with self._lock:
            await self.websocket.send_text(json.dumps(frame, default=str))

    async def pump(self) -> None:
        """Forever: wait to be woken, then send every pending message not sent yet, by seq.
        Database errors are retried after :attr:`Hub.retry_s`; a socket error ends the pump."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while True:
                    batch = await outbox.pending(self.hub.pool, self.recipient, exclude=self.sent)
                    for message in batch:
                        with self.hub.delivery_span(message):
                            await self.send(message.frame())
                        self.sent.add(message.id)
                    if len(batch) < outbox.MAX_BATCH:
                        break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("push: outbox read for %s failed (%s); retrying", self.recipient, e)
                await asyncio.sleep(self.hub.retry_s)
                self.wake()


class Hub:
    """Recipient key -> live sessions, woken by notifications on ``outbox.CHANNEL``.

    ``dsn``: the database the LISTEN connection opens; ``pool``: for outbox reads.
    ``ping_s``/``retry_s``: LISTEN health check and reconnect backoff, seconds.
    ``tracer``: makes the delivery spans (None: tracing off).
    """

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        ping_s: float = 5.0,
        retry_s: float = 0.5,
        tracer: Tracer | None = None,
    ) -> None:
        self.dsn = dsn
        self.pool = pool
        self.ping_s = ping_s
        self.retry_s = retry_s
        self.tracer = tracer
        self.sessions: dict[str, set[Session]] = {}
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening (returns at once; the first connection is made in the background)."""
        self._task = asyncio.create_task(self._listen_forever(), name="push-hub-listen")

    async def stop(self) -> None:
        """Stop listening. Raises nothing: a failure of the listening task is logged."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("push: the LISTEN task failed while stopping")

    @asynccontextmanager
    async def session(self, recipient: str, websocket: WebSocket) -> AsyncIterator[Session]:
        """Register a session of ``recipient`` for the duration of the block; its pump
        runs as ``session.pump_task`` and is cancelled on exit."""
        s = Session(self, recipient, websocket)
        self.sessions.setdefault(recipient, set()).add(s)
        task = s.pump_task = asyncio.create_task(s.pump(), name=f"push-{recipient}")
        try:
            yield s
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            peers = self.sessions.get(recipient)
            if peers is not None:
                peers.discard(s)
                if not peers:
                    del self.sessions[recipient]

    @contextmanager
    def delivery_span(self, message: outbox.OutboxMessage) -> Iterator[None]:
        """The span of one delivery of ``message``: ``push <type>``, child of the context
        stored with it; nothing when tracing is off or the message has no context."""
        parent = context_of(message.traceparent)
        if self.tracer is None or parent is None:
            yield
            return
        attributes = {
            "ringflow.push.id": message.id,
            "ringflow.push.type": message.type.value,
            "ringflow.call_id": message.call_id,
        }
        with self.tracer.start_as_current_span(
            f"push {message.type.value}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        ):
            yield

    def wake_all(self) -> None:
        """Resync every session."""
        for peers in self.sessions.values():
            for s in peers:
                s.wake()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, recipient: str) -> None:
        for s in self.sessions.get(recipient, ()):
            s.wake()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
                log.warning("push: LISTEN connection lost; reconnecting")
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,  # a protocol op cut short (server going down)
            ) as e:
                log.warning("push: LISTEN connection failed (%s); retrying", e)
            await asyncio.sleep(self.retry_s)

    async def _listen_once(self) -> None:
        """One LISTEN connection, until it is lost (returns) or fails (raises)."""
        conn = await asyncpg.connect(self.dsn, timeout=self.ping_s)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(outbox.CHANNEL, self._on_notify)
            self.listening.set()
            self.wake_all()  # anything committed while we were not listening
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self.ping_s)
                except TimeoutError:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self.ping_s)
        finally:
            self.listening.clear()
            conn.terminate()


@asynccontextmanager
async def hub_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the hub for ``app`` (``app.state.hub``, LISTEN on ``settings.database_url``,
    reads through ``app.state.pool``, delivery spans with ``app.state.tracer_provider`` when
    set) and stop it on exit."""
    provider = getattr(app.state, "tracer_provider", None)
    tracer = provider.get_tracer("ringflow.push") if provider is not None else None
    hub = Hub(app.state.settings.database_url, app.state.pool, tracer=tracer)
    app.state.hub = hub
    await hub.start()
    try:
        yield
    finally:
        await hub.stop()

"""The webhook dispatcher: delivers the webhook outbox (``store/webhooks.py``), signed by the
Standard Webhooks scheme. An asyncio service in every worker process (``ringflow/worker.py``,
so the embedded stack and docker-compose run it); docs/webhooks.md says why not a workflow.

- Leases: :func:`store.webhooks.claim` takes due deliveries with ``FOR UPDATE SKIP LOCKED``
  and a lease (``lease_for``): several workers share the work, and a delivery held by a
  process that died is due again when its lease runs out. A stopping dispatcher lets attempts
  under way finish (``timeout_s``), then gives back what it could not settle.
- Order: one delivery in flight per (endpoint, call), the earliest first.
- Isolation: each HTTP attempt is its own task with a total timeout (``timeout_s``); at most
  ``max_in_flight`` per endpoint per process; the claim loop never waits for a delivery,
  so a hanging endpoint holds only its own slots, never a call (the outbox is written in
  the call's transaction and read here) nor another endpoint's or tenant's deliveries.
- Retries: :class:`RetryPolicy` (exponential backoff with jitter, for ``window_s``).
- Addresses: only ``allowed_networks`` (``ringflow/webhook_urls.py``), checked before each POST.
- Disabling: an endpoint failing for ``disable_after_s`` with at least
  ``disable_min_failures`` consecutive failed attempts (``store.webhooks.settle``).

Metrics: ``ringflow_webhook_deliveries_total{result}`` through the worker runtime's meter
(docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from ringflow import webhook_urls
from store import webhooks as store
from store.feed import CHANNEL

if TYPE_CHECKING:
    from temporalio.common import MetricMeter

    from ringflow.settings import Settings

log = logging.getLogger("ringflow.webhooks")

USER_AGENT = "ringflow-webhooks/1"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed delivery is tried again: attempt ``n`` (1 = the first failure) waits
    ``min(max_s, base_s * 2**(n-1))`` seconds times a random factor in [0.5, 1] ("equal
    jitter", AWS Architecture Blog, "Exponential Backoff And Jitter"), and no attempt is
    scheduled after ``window_s`` from the delivery's first one (Standard Webhooks and Svix
    retry for about a day). Defaults: 5 s, 1 h, 24 h."""

    base_s: float = 5.0
    max_s: float = 3600.0
    window_s: float = 86400.0

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
        ceiling = min(self.max_s, self.base_s * 2 ** max(attempt - 1, 0))
        return ceiling * (0.5 + 0.5 * rand())

    def next_attempt(
        self, attempt: int, window_start: datetime, now: datetime, rand: Callable[[], float] = random.random
    ) -> datetime | None:
        """When to try again after failed attempt ``attempt`` at ``now``; None when that is
        past ``window_start + window_s`` (the delivery has failed for good)."""
        at = now + timedelta(seconds=self.delay_s(attempt, rand))
        return None if at > window_start + timedelta(seconds=self.window_s) else at


@dataclass
class DispatcherConfig:
    """The dispatcher's knobs (from settings, :meth:`from_settings`): seconds unless said."""

    timeout_s: float = 10.0
    max_in_flight: int = 4
    batch: int = 100
    poll_s: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    disable_after_s: float = 86400.0
    disable_min_failures: int = 10
    allowed_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    @classmethod
    def from_settings(cls, s: Settings) -> DispatcherConfig:
        """The ``RINGFLOW_WEBHOOK_*`` settings."""
        return cls(
            timeout_s=s.webhook_timeout_s,
            max_in_flight=s.webhook_max_in_flight,
            poll_s=s.webhook_poll_s,
            retry=RetryPolicy(s.webhook_retry_base_s, s.webhook_retry_max_s, s.webhook_retry_window_s),
            disable_after_s=s.webhook_disable_after_s,
            disable_min_failures=s.webhook_disable_min_failures,
            allowed_networks=list(s.webhook_allowed_networks),
        )

    @property
    def lease_for(self) -> timedelta:
        """How long a claimed delivery stays ours: the attempt's timeout plus a margin."""
        return timedelta(seconds=self.timeout_s * 2 + 5)


class _Refused(Exception):
    """The URL's address is not allowed (``ringflow/webhook_urls.py``)."""


def sign(lease: store.Lease, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of ``lease``'s body sent at ``at``: ``webhook-id`` (the
    event id: stable across retries and redeliveries), ``webhook-timestamp`` (Unix seconds)
    and ``webhook-signature`` (``v1,<base64>`` per secret, space-separated: the current
    one and a rotated one still in its overlap)."""
    signatures = " ".join(Webhook(s).sign(lease.event_id, at, lease.body) for s in lease.secrets)
    return {
        "webhook-id": lease.event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Dispatcher:
    """Delivers due webhook deliveries until :meth:`stop`; see the module docstring.

    ``clock``: the time used for leases, retries and attempts (tests pass a fake one);
    ``meter``: the worker runtime's metric meter, or None."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: DispatcherConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        meter: MetricMeter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.pool = pool
        self.config = config or DispatcherConfig()
        self.clock = clock
        self._networks = webhook_urls.networks(self.config.allowed_networks)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._in_flight: dict[str, int] = {}
        self._tasks: dict[asyncio.Task[None], store.Lease] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )
        self._counter = (
            meter.create_counter(
                "ringflow_webhook_deliveries", "webhook delivery attempts by result: delivered, failed"
            )
            if meter is not None
            else None
        )
        self.attempts = {"delivered": 0, "failed": 0}
        """Attempts made by this dispatcher, by result (also in the metric)."""

    def wake(self) -> None:
        """Look for due deliveries now (a NOTIFY came)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and deliver until :meth:`stop`; database errors are logged and retried."""
        listener: asyncpg.Connection | None = None
        try:
            while not self._stop.is_set():
                try:
                    if listener is None or listener.is_closed():
                        listener = await self.pool.acquire()
                        await listener.add_listener(CHANNEL, self._on_notify)
                    claimed = await self.step()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    log.warning("webhook dispatcher: %s; retrying", e)
                    if listener is not None:
                        with contextlib.suppress(Exception):
                            await self.pool.release(listener)
                        listener = None
                    claimed = 0
                if claimed >= self.config.batch:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_s)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(CHANNEL, self._on_notify)
                    await self.pool.release(listener)
            await self._shutdown()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def step(self) -> int:
        """Claim due deliveries once and start them (not waiting for them); returns how many."""
        cfg = self.config
        full = [e for e, n in self._in_flight.items() if n >= cfg.max_in_flight]
        leases = await store.claim(self.pool, self.clock(), cfg.lease_for, cfg.batch, cfg.max_in_flight, full)
        extra = []
        for lease in leases:
            if self._in_flight.get(lease.endpoint_id, 0) >= cfg.max_in_flight:
                extra.append(lease)  # this endpoint is at its bound here: due again at once
                continue
            self._in_flight[lease.endpoint_id] = self._in_flight.get(lease.endpoint_id, 0) + 1
            task = asyncio.create_task(self._deliver(lease))
            self._tasks[task] = lease
            task.add_done_callback(self._done)
        await store.release(self.pool, extra)
        return len(leases) - len(extra)

    async def idle(self) -> None:
        """Wait until the attempts started so far are settled."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        lease = self._tasks.pop(task)
        self._in_flight[lease.endpoint_id] -= 1
        if not self._in_flight[lease.endpoint_id]:
            del self._in_flight[lease.endpoint_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery %s failed to settle", lease.id, exc_info=task.exception())
        self._wake.set()  # the next event of that call may be due now

    async def attempt(self, lease: store.Lease) -> store.Outcome:
        """One signed POST of ``lease`` within ``timeout_s`` (no redirects followed)."""
        start = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                refused = await webhook_urls.delivery_problem(lease.url, self._networks)
                if refused is not None:
                    raise _Refused(refused)
                # the signature's timestamp is the wall clock's: receivers check it against theirs
                headers = sign(lease, datetime.now(UTC))
                response = await self._client.post(lease.url, content=lease.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except _Refused as e:
            error = str(e)
        except TimeoutError:
            error = f"timeout after {self.config.timeout_s:g} s"
        except httpx.TimeoutException:
            error = f"timeout after {self.config.timeout_s:g} s"
        except httpx.ConnectError as e:
            error = f"connection failed: {e}" if str(e) else "connection failed"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        latency = int((time.perf_counter() - start) * 1000)
        return store.Outcome(ok=error is None, status_code=status, error=error, latency_ms=latency)

    async def _deliver(self, lease: store.Lease) -> None:
        outcome = await self.attempt(lease)
        now = self.clock()
        cfg = self.config
        next_at = None if outcome.ok else cfg.retry.next_attempt(lease.attempts + 1, lease.window_start, now)
        result = "delivered" if outcome.ok else "failed"
        self.attempts[result] += 1
        if self._counter is not None:
            self._counter.with_additional_attributes({"result": result}).add(1)
        async with self.pool.acquire() as conn:
            reason = await store.settle(
                conn,
                lease,
                outcome,
                now,
                next_at,
                timedelta(seconds=cfg.disable_after_s),
                cfg.disable_min_failures,
            )
        if reason:
            log.warning("webhook endpoint %s disabled: %s", lease.endpoint_id, reason)

    def stop(self) -> None:
        """Ask :meth:`run` to return: no new claims; attempts under way get ``timeout_s`` to
        finish, then are cancelled and their deliveries due again at once."""
        self._stop.set()
        self._wake.set()

    async def _shutdown(self) -> None:
        if self._tasks:  # attempts under way finish (each within timeout_s) and are settled
            await asyncio.wait(list(self._tasks), timeout=self.config.timeout_s + 2)
        abandoned = list(self._tasks.values())
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            # cancelled mid-request: maybe received, maybe not; due again now (at least once)
            await store.release(self.pool, abandoned)
        await self._client.aclose()


@contextlib.asynccontextmanager
async def running(pool: asyncpg.Pool, config: DispatcherConfig, **kwargs: Any) -> AsyncIterator[Dispatcher]:
    """``async with running(pool, config) as dispatcher``: a :class:`Dispatcher` running in a
    task, stopped on exit."""
    dispatcher = Dispatcher(pool, config, **kwargs)
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await task

"""Admission control of new calls: a token bucket per API process (issue 4, item 5 "Overload").

One worker sets up about 10 calls/s on the reference machine (2 cores, embedded dev
server; ``bench/RESULTS.md`` run E) and saturates towards 20/s;
above the sustainable rate new calls queue in Temporal and every caller's setup time
grows to tens of seconds. With ``admission_rate_per_s`` > 0, ``POST /v1/calls`` sheds
new calls above ``admission_rate_per_s`` (bursts of up to ``admission_burst``) with
``429 Too Many Requests`` + ``Retry-After`` (problem ``overloaded``, errCode 1012)
instead. Only the start of a NEW workflow takes a token: an idempotent replay, a
conflict or a request refused by a check (404, 403, ...) costs nothing.

The bucket is classic (RFC 2697's token bucket without the colour): it holds at most
``burst`` tokens, gains ``rate_per_s`` tokens per second, and a call takes one. It is
per API process, not shared: with N API processes the cluster admits N x the rate.

Per tenant (issue 9 item 5, "fair under load"): with ``admission_tenant_rate_per_s`` > 0 each
tenant also has its own bucket (``admission_tenant_rate_per_s``, ``admission_tenant_burst``),
taken FIRST: a tenant above its share is refused at its own bucket, so its excess never uses
the process-wide tokens (nor worker capacity) that the other tenants' calls need. A call
refused by the process-wide bucket gives its tenant's token back. ``bench/fairness.py``
measures it: the quiet tenant's setup p99 with and without another tenant bursting at 5x.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from api.problems import Problem
from ringflow.contracts.errors import ErrCode
from ringflow.contracts.tenancy import DEFAULT_TENANT
from ringflow.settings import Settings


class TokenBucket:
    """At most ``burst`` tokens, refilled continuously at ``rate_per_s`` tokens per second.

    ``clock`` returns seconds (monotonic; injectable for tests). The bucket starts full.
    Not thread-safe; in one asyncio loop :meth:`try_acquire` never awaits, so it is atomic.
    """

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._at) * self.rate_per_s)
        self._at = now

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional)."""
        self._refill()
        return self._tokens

    def try_acquire(self) -> float:
        """Take one token: 0.0 when taken, else the seconds until one is available
        (nothing taken)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s

    def release(self) -> None:
        """Give back a token taken for a call that was not started after all."""
        self._refill()
        self._tokens = min(float(self.burst), self._tokens + 1.0)


def retry_after_s(wait_s: float) -> int:
    """``Retry-After`` (RFC 9110 section 10.2.3, delay-seconds) for a wait of ``wait_s``
    seconds: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def overloaded(wait_s: float) -> Problem:
    """429 ``overloaded`` (errCode 1012) with ``Retry-After`` for a wait of ``wait_s`` seconds."""
    after = retry_after_s(wait_s)
    return Problem(
        429,
        "overloaded",
        "Too many new calls",
        f"more new calls than this API admits; retry in {after} s",
        ErrCode.OVERLOADED,
        headers={"Retry-After": str(after)},
    )


class Admission:
    """The API process's admission control: a :class:`TokenBucket` from the settings, or
    none (everything admitted) when ``admission_rate_per_s`` is 0; and one bucket per tenant
    (made on the tenant's first call) when ``admission_tenant_rate_per_s`` > 0."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = (
            TokenBucket(settings.admission_rate_per_s, settings.admission_burst, clock)
            if settings.admission_rate_per_s > 0
            else None
        )
        self._clock = clock
        self._tenant_rate = settings.admission_tenant_rate_per_s
        self._tenant_burst = settings.admission_tenant_burst
        self.tenants: dict[str, TokenBucket] = {}

    def _tenant_bucket(self, tenant_id: str) -> TokenBucket | None:
        if self._tenant_rate <= 0:
            return None
        bucket = self.tenants.get(tenant_id)
        if bucket is None:
            bucket = self.tenants[tenant_id] = TokenBucket(self._tenant_rate, self._tenant_burst, self._clock)
        return bucket

    def admit(self, tenant_id: str = DEFAULT_TENANT) -> None:
        """Take a token for one new call of ``tenant_id``: its tenant's bucket first, then the
        process-wide one; raise 429 :func:`overloaded` (nothing taken) when either has none."""
        own = self._tenant_bucket(tenant_id)
        if own is not None:
            wait = own.try_acquire()
            if wait > 0:
                raise overloaded(wait)
        if self.bucket is None:
            return
        wait = self.bucket.try_acquire()
        if wait > 0:
            if own is not None:
                own.release()
            raise overloaded(wait)

    def release(self, tenant_id: str = DEFAULT_TENANT) -> None:
        """Give back the tokens of a call of ``tenant_id`` that was not started after all."""
        if self.bucket is not None:
            self.bucket.release()
        own = self._tenant_bucket(tenant_id)
        if own is not None:
            own.release()


def _admission(request: Request) -> Admission:
    state = request.app.state
    admission: Admission | None = getattr(state, "admission", None)
    if admission is None:
        admission = state.admission = Admission(state.settings)
    return admission


AdmissionDep = Annotated[Admission, Depends(_admission)]
"""The app's :class:`Admission`, made from its settings on first use."""

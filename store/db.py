"""Connection pool and migrations.

TODO(helper A): implement ``migrate`` with yoyo-migrations over ``store/migrations``.
"""

from __future__ import annotations

import asyncpg


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool on ``dsn`` (JSON/JSONB codecs set up)."""
    raise NotImplementedError


def migrate(dsn: str) -> None:
    """Apply every pending migration in ``store/migrations`` to ``dsn`` (idempotent)."""
    raise NotImplementedError

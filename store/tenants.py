"""Tenants and their API keys (issue 9; migrations ``0006.tenants`` and ``0007.tenant_scope``).

An API key is ``rfk_<id>_<secret>``: ``id`` (12 hex characters) is public and finds the row,
``secret`` is 32 random bytes (``secrets.token_urlsafe``); only ``sha256(secret)`` is stored.
Why sha256 and not argon2/scrypt: those slow hashes protect low-entropy passwords from
dictionary attacks; a 256-bit random secret has no dictionary, so a fast hash is as safe and
costs microseconds per request instead of tens of milliseconds of CPU (GitHub's and Stripe's
tokens are checked the same way). The comparison is constant-time (``hmac.compare_digest``).

Every function takes an asyncpg connection or pool; errors are :class:`TenantError` subclasses
that ``api/routers/tenants.py`` maps to problems and the CLI prints as one line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringflow.contracts.tenancy import DEFAULT_SITE, DEFAULT_TENANT, Scope

Conn = Any
"""An asyncpg ``Connection``, ``PoolConnectionProxy`` or ``Pool``."""

KEY_PREFIX = "rfk_"
"""Every stored API key starts with it (secret scanners can match ``rfk_[0-9a-f]{12}_``)."""


class TenantError(Exception):
    """Base of the errors below; the message is one line for a person."""


class UnknownTenant(TenantError):
    """No tenant ``tenant_id`` (or, for key operations, no key ``key_id`` in that tenant)."""


class TenantExists(TenantError):
    """A tenant with that id exists already."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant row: ``disabled_at`` None while enabled."""

    id: str
    name: str
    disabled_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret). ``scopes`` as stored; times UTC."""

    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """What :func:`authenticate` found for a presented key: the key and its tenant's state."""

    key: ApiKey
    tenant_disabled: bool
    expired: bool


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key of the ``rfk_<id>_<secret>`` form, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


# ---------------------------------------------------------------- tenants


def _tenant(row: Any) -> Tenant:
    return Tenant(row["id"], row["name"], row["disabled_at"], row["created_at"])


async def create_tenant(conn: Conn, tenant_id: str, name: str) -> Tenant:
    """Insert tenant ``tenant_id`` and its default site (``DEFAULT_SITE``, so units and devices
    can be written at once). Raises :class:`TenantExists`."""
    row = await conn.fetchrow(
        """WITH t AS (INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING
                      RETURNING id, name, disabled_at, created_at),
                s AS (INSERT INTO sites (tenant_id, id, name) SELECT id, $3, 'Default site' FROM t)
           SELECT * FROM t""",
        tenant_id,
        name,
        DEFAULT_SITE,
    )
    if row is None:
        raise TenantExists(f"tenant {tenant_id!r} already exists")
    return _tenant(row)


async def list_tenants(conn: Conn) -> list[Tenant]:
    """Every tenant, by id."""
    return [_tenant(r) for r in await conn.fetch("SELECT * FROM tenants ORDER BY id")]


async def get_tenant(conn: Conn, tenant_id: str) -> Tenant:
    """The tenant. Raises :class:`UnknownTenant`."""
    row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
    if row is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return _tenant(row)


async def set_disabled(conn: Conn, tenant_id: str, disabled: bool) -> Tenant:
    """Disable (its keys and party tokens are refused; its data stays) or enable the tenant.
    Disabling twice keeps the first time. Raises :class:`UnknownTenant`, :class:`TenantError`
    for the default tenant (the bootstrap key's: never disabled)."""
    if disabled and tenant_id == DEFAULT_TENANT:
        raise TenantError(f"the {DEFAULT_TENANT!r} tenant (the bootstrap key's) cannot be disabled")
    row = await conn.fetchrow(
        """UPDATE tenants SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END
           WHERE id = $1 RETURNING *""",
        tenant_id,
        disabled,
    )
    if row is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return _tenant(row)


async def tenant_enabled(conn: Conn, tenant_id: str) -> bool:
    """True when the tenant exists and is not disabled."""
    return bool(await conn.fetchval("SELECT disabled_at IS NULL FROM tenants WHERE id = $1", tenant_id))


# ---------------------------------------------------------------- keys

_KEY_COLS = "id, tenant_id, name, scopes, created_at, expires_at, last_used_at, revoked_at"


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row["id"],
        row["tenant_id"],
        row["name"],
        tuple(row["scopes"]),
        row["created_at"],
        row["expires_at"],
        row["last_used_at"],
        row["revoked_at"],
    )


async def create_key(
    conn: Conn, tenant_id: str, scopes: list[Scope], name: str = "", expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key of ``tenant_id`` with ``scopes``; returns (the stored key, the full key
    ``rfk_<id>_<secret>``, shown once: only its hash is kept). Raises :class:`UnknownTenant`."""
    await get_tenant(conn, tenant_id)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO api_keys (id, tenant_id, name, scopes, secret_sha256, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLS}""",
        key_id,
        tenant_id,
        name or f"key {key_id}",
        sorted(s.value for s in scopes),
        _digest(secret),
        expires_at,
    )
    return _key(row), f"{KEY_PREFIX}{key_id}_{secret}"


async def list_keys(conn: Conn, tenant_id: str | None = None) -> list[ApiKey]:
    """The keys of ``tenant_id`` (None: every tenant's), oldest first, revoked ones included."""
    rows = await conn.fetch(
        f"""SELECT {_KEY_COLS} FROM api_keys WHERE $1::text IS NULL OR tenant_id = $1
            ORDER BY tenant_id, created_at, id""",
        tenant_id,
    )
    return [_key(r) for r in rows]


async def revoke_key(conn: Conn, key_id: str, tenant_id: str | None = None) -> ApiKey:
    """Revoke key ``key_id`` (of ``tenant_id``; None: any tenant's); revoking twice keeps the
    first time. Raises :class:`UnknownTenant` when there is no such key (in that tenant)."""
    row = await conn.fetchrow(
        f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) RETURNING {_KEY_COLS}""",
        key_id,
        tenant_id,
    )
    if row is None:
        raise UnknownTenant(f"no API key {key_id!r}")
    return _key(row)


async def authenticate(conn: Conn, presented: str) -> KeyMatch | None:
    """The stored, unrevoked key ``presented`` is (one indexed read), or None when it is
    malformed, unknown, revoked or its secret differs. ``expired`` and ``tenant_disabled`` say
    whether it may be used now; the caller refuses it then."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = await conn.fetchrow(
        f"""SELECT {", ".join("k." + c for c in _KEY_COLS.split(", "))}, k.secret_sha256,
                   t.disabled_at IS NOT NULL AS tenant_disabled,
                   coalesce(k.expires_at <= now(), false) AS expired
            FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
            WHERE k.id = $1 AND k.revoked_at IS NULL""",
        key_id,
    )
    if row is None or not hmac.compare_digest(bytes(row["secret_sha256"]), _digest(secret)):
        return None
    return KeyMatch(_key(row), bool(row["tenant_disabled"]), bool(row["expired"]))


async def touch_key(conn: Conn, key_id: str) -> None:
    """Set the key's ``last_used_at`` to now (callers rate-limit this write)."""
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id)

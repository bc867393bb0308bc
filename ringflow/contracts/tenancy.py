"""Tenants, sites and the scopes of API keys (issue 9).

A tenant is a property-management company; it owns sites (a building or a campus) and
everything in them: devices, device groups, users, units, policies, authorizations, calls,
pushes, webhooks and events. A backend's API key belongs to one tenant and carries scopes;
every query it makes is filtered by that tenant, and another tenant's resources answer 404.

The embedded stack and the demo need no tenant setup: today's data and the bootstrap key
(``RINGFLOW_API_KEY``) belong to :data:`DEFAULT_TENANT` and its :data:`DEFAULT_SITE`
(migration ``0006.tenants``).
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_TENANT = "default"
"""The tenant of today's data and of the bootstrap key ``RINGFLOW_API_KEY``."""

DEFAULT_SITE = "default"
"""The site of :data:`DEFAULT_TENANT` that a building file without ``site`` loads into."""


class Scope(StrEnum):
    """What an API key may do (``ringflow keys create --scope calls:write ...``).

    Write implies nothing about read: a key that lists calls needs ``calls:read``.
    ``tenants:admin`` is the platform administrator's (create and disable tenants, keys of
    any tenant); the bootstrap key has every scope.
    """

    DIRECTORY_READ = "directory:read"
    DIRECTORY_WRITE = "directory:write"
    CALLS_READ = "calls:read"
    CALLS_WRITE = "calls:write"
    WEBHOOKS_ADMIN = "webhooks:admin"
    TENANTS_ADMIN = "tenants:admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)
"""Every scope: the bootstrap key's."""

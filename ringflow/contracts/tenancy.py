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
from typing import TYPE_CHECKING, Annotated

from pydantic import StringConstraints

if TYPE_CHECKING:
    from ringflow.contracts.common import Party

DEFAULT_TENANT = "default"
"""The tenant of today's data and of the bootstrap key ``RINGFLOW_API_KEY``."""

DEFAULT_SITE = "default"
"""The site of :data:`DEFAULT_TENANT` that a building file without ``site`` loads into."""


class Scope(StrEnum):
    """What an API key may do (``ringflow keys create --scope calls:write ...``).

    Write implies nothing about read: a key that lists calls needs ``calls:read``.
    ``keys:admin`` creates, lists and revokes the keys of the key's own tenant (never with a
    scope the creating key lacks). ``tenants:admin`` is the platform administrator's (create
    and disable tenants, keys of any tenant); the bootstrap key has every scope.
    """

    DIRECTORY_READ = "directory:read"
    DIRECTORY_WRITE = "directory:write"
    CALLS_READ = "calls:read"
    CALLS_WRITE = "calls:write"
    WEBHOOKS_ADMIN = "webhooks:admin"
    KEYS_ADMIN = "keys:admin"
    TENANTS_ADMIN = "tenants:admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)
"""Every scope: the bootstrap key's."""


TenantId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
"""A tenant's id: 1-64 chars of ``[a-z0-9-]`` (never ``~``, the qualifier's separator)."""

QualifiedId = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^([a-z0-9][a-z0-9-]*~)?[A-Za-z0-9][A-Za-z0-9._:@-]*$"
    ),
]
"""A tenant-qualified id (:func:`qualify`): an ``Identifier``, prefixed by ``<tenant>~`` outside
the default tenant. The media bridge's room ids are these (rooms are named by workflow id)."""

SEPARATOR = "~"
"""Between a tenant and an id in a tenant-qualified id: not an ``Identifier`` character, so a
qualified id never equals an unqualified one."""


def qualify(tenant_id: str, ident: str) -> str:
    """The process-wide id of a tenant's ``ident`` (a call id, a party key): ``ident`` itself in
    :data:`DEFAULT_TENANT` (today's ids and stored histories stay as they are), else
    ``"<tenant>~<ident>"``.

    Why: call ids are the Temporal workflow ids, media-bridge rooms and the prefixes of room,
    event and push ids; party keys are push recipients (the hub's LISTEN/NOTIFY payload) and
    line claims. Two tenants may both have a call "press-1" or a user "alice": qualifying these
    keys where they cross processes keeps them apart without a lookup table (docs/design.md#tenants).
    """
    return ident if tenant_id == DEFAULT_TENANT else f"{tenant_id}{SEPARATOR}{ident}"


def split(qualified: str) -> tuple[str, str]:
    """Inverse of :func:`qualify`: ``(tenant_id, ident)``; an id without the separator is
    :data:`DEFAULT_TENANT`'s."""
    tenant, sep, ident = qualified.partition(SEPARATOR)
    return (tenant, ident) if sep else (DEFAULT_TENANT, qualified)


def tenant_of(qualified: str) -> str:
    """The tenant of a qualified id (call id, room id, event id, party key)."""
    return split(qualified)[0]


def unqualified(qualified: str) -> str:
    """The id a tenant sees (its API's call ids, room ids, event ids): the qualifier removed."""
    return split(qualified)[1]


def party_key(tenant_id: str, party: Party) -> str:
    """The tenant-qualified key of ``party`` (``"user:alice"`` in the default tenant,
    ``"acme~user:alice"`` in tenant ``acme``): push recipients and line claims."""
    return qualify(tenant_id, party.key())

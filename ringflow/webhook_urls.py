"""Where webhook URLs may point: ``RINGFLOW_WEBHOOK_ALLOWED_NETWORKS`` (docs/webhooks.md).

A tenant registers any URL it likes, so without a rule the dispatcher would POST wherever it
is told: to the cloud metadata address, the database, the Temporal frontend (server-side
request forgery). The rule, like the media bridge's ``RINGFLOW_MEDIA_ALLOWED_NETWORKS``:
every address a URL's host resolves to must be in an allowed network, checked on
registration (IP literals; host names are only accepted when an allowed network is public,
so that a loopback-only stack never looks a name up) and again before every delivery. The
default is loopback only (the embedded stack, tests, the demo); docker-compose.yml sets
``["public"]``: any globally routable address (Python's ``ipaddress`` ``is_global``), never the
host's private networks (the database, Temporal, the cloud metadata address 169.254.169.254).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

PUBLIC = "public"
"""The allowed-networks entry for every globally routable address (``is_global``)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network | str


def networks(specs: Iterable[str]) -> list[Network]:
    """The networks of ``specs`` (CIDR strings, or :data:`PUBLIC`); raises ``ValueError`` on a
    bad one."""
    return [PUBLIC if s == PUBLIC else ipaddress.ip_network(s, strict=False) for s in specs]


def allows_hostnames(nets: list[Network]) -> bool:
    """Host names may be registered: some allowed network is public, or neither private nor
    loopback."""
    return any(isinstance(n, str) or not (n.is_private or n.is_loopback) for n in nets)


def _allowed(address: str, nets: list[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.is_global if isinstance(n, str) else (ip.version == n.version and ip in n) for n in nets)


def registration_problem(url: str, nets: list[Network]) -> str | None:
    """Why ``url`` may not be registered (a sentence), or None. No DNS lookup."""
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or allows_hostnames(nets):
            return None
        return f"host {host!r}: only IP addresses in RINGFLOW_WEBHOOK_ALLOWED_NETWORKS are accepted here"
    if not _allowed(host, nets):
        return f"address {host} is not in RINGFLOW_WEBHOOK_ALLOWED_NETWORKS"
    return None


async def delivery_problem(url: str, nets: list[Network]) -> str | None:
    """Why ``url`` may not be delivered to now (a sentence), or None: its host resolves
    (``getaddrinfo``) to an address outside ``nets``, or does not resolve."""
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    try:
        ipaddress.ip_address(host)
        addresses = {host}
    except ValueError:
        if not (host == "localhost" or allows_hostnames(nets)):
            return f"host {host!r} not allowed"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as e:
            return f"cannot resolve {host!r}: {e}"
        addresses = {str(info[4][0]) for info in infos}
    refused = sorted(a for a in addresses if not _allowed(a, nets))
    if refused:
        return f"address {refused[0]} is not in RINGFLOW_WEBHOOK_ALLOWED_NETWORKS"
    return None

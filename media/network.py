"""Where media may flow: the bridge's ICE addresses, ICE servers and allowed networks.

aioice gathers host candidates from every interface except loopback
(``aioice.ice.get_host_addresses`` skips 127.0.0.1 and ::1), and aiortc adds
Google's public STUN server when ``RTCConfiguration.iceServers`` is None. On a
machine whose media must stay on 127.0.0.1 both are wrong, so, as mediasoup's
``listenIps``/``announcedIp``:

- :func:`use_listen_ips` makes aioice gather (bind UDP sockets on) exactly the
  configured ``listen_ips``, loopback included;
- :meth:`MediaNetwork.announce` rewrites the addresses of the host candidates in
  an SDP answer to ``announced_ip`` (for a bridge behind NAT or in a container);
- :meth:`MediaNetwork.filter_remote` drops remote candidates outside
  ``allowed_networks`` (and mDNS ``.local`` names, whose resolution would
  multicast), so the bridge never sends a connectivity check elsewhere on its
  own (a client's authenticated checks still teach it the client's address:
  peer-reflexive, how a browser hiding behind mDNS connects);
- :meth:`MediaNetwork.rtc_configuration` passes ``iceServers`` from settings
  (default: none, never the public default): STUN URLs and TURN URLs with ephemeral
  credentials of the bridge's own (``ringflow/ice.py``, the TURN REST API scheme).

Source of the rules: docs/design.md#media (aiortc's examples/server) and issue 3.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from ringflow.ice import BRIDGE_PARTY_KEY, IcePolicy
from ringflow.settings import Settings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def use_listen_ips(ips: Sequence[str]) -> None:
    """Make every aioice ``Connection`` of this process gather host candidates on ``ips``
    only (e.g. ``["127.0.0.1"]``), instead of every non-loopback interface address.

    Process-wide on purpose: aioice reads ``get_host_addresses`` at gathering time and
    has no per-connection option; every peer in a bridge (or test) process shares the
    policy. Calling it again replaces the list. Raises ``ValueError`` on an address
    that is not an IP literal.
    """
    addrs = [str(ipaddress.ip_address(ip)) for ip in ips]

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addrs if (use_ipv4 if ipaddress.ip_address(a).version == 4 else use_ipv6)]

    aioice.ice.get_host_addresses = host_addresses


def candidate_address(line: str) -> str | None:
    """The connection address of an SDP ``a=candidate:`` line (RFC 8839 section 5.1), or
    None for any other line or a malformed candidate."""
    if not line.startswith("a=candidate:"):
        return None
    parts = line.split()
    return parts[4] if len(parts) >= 8 else None


def candidate_addresses(sdp: str) -> list[str]:
    """Every candidate address in ``sdp``, in order (for checks and tests)."""
    return [a for a in (candidate_address(line) for line in sdp.splitlines()) if a is not None]


def udp_addresses(pid: int | str = "self") -> set[str]:
    """Local addresses of the UDP sockets process ``pid`` holds (Linux: its
    ``/proc/<pid>/fd`` socket inodes looked up in ``/proc/net/udp`` and ``udp6``): where
    its ICE sockets really listen. Raises ``OSError`` when ``pid`` does not exist."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("udp", socket.AF_INET), ("udp6", socket.AF_INET6)):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] not in inodes:
                    continue
                raw = bytes.fromhex(cols[1].split(":")[0])  # 32-bit words in host (little-endian) order
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def tree_udp_addresses(pid: int) -> set[str]:
    """:func:`udp_addresses` of process ``pid`` and of all its descendants (a bridge node and
    its media processes, ``media/node.py``). Raises ``OSError`` when ``pid`` does not exist."""
    import psutil

    found = udp_addresses(pid)
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found |= udp_addresses(child.pid)
        except OSError:  # exited meanwhile
            continue
    return found


@dataclass(frozen=True)
class MediaNetwork:
    """The media network policy of one bridge process.

    ``listen_ips``: addresses the bridge gathers/binds; ``announced_ip``: address written
    into the host candidates of its answers (None: the gathered one);
    ``allowed_networks``: remote candidates outside these are dropped; ``ice``: STUN/TURN
    servers and the TURN secret from settings (:class:`~ringflow.ice.IcePolicy`), none by
    default.
    """

    listen_ips: tuple[str, ...] = ("127.0.0.1",)
    announced_ip: str | None = None
    allowed_networks: tuple[IpNetwork, ...] = field(
        default_factory=lambda: (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    )
    ice: IcePolicy = field(default_factory=IcePolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaNetwork:
        """The policy in ``settings.media_*``; raises ``ValueError`` on a malformed address."""
        return cls(
            listen_ips=tuple(str(ipaddress.ip_address(ip)) for ip in settings.media_listen_ips),
            announced_ip=(
                str(ipaddress.ip_address(settings.media_announced_ip))
                if settings.media_announced_ip
                else None
            ),
            allowed_networks=tuple(ipaddress.ip_network(n) for n in settings.media_allowed_networks),
            ice=(
                IcePolicy.from_settings(settings)
                if settings.media_bridge_turn
                else replace(IcePolicy.from_settings(settings), turn_urls=())
            ),
        )

    def install(self) -> None:
        """Apply ``listen_ips`` to aioice in this process (:func:`use_listen_ips`)."""
        use_listen_ips(self.listen_ips)

    def rtc_configuration(self, party_key: str = BRIDGE_PARTY_KEY) -> RTCConfiguration:
        """``RTCConfiguration`` with exactly the servers of ``ice`` (an empty list, never
        None: aiortc would then add a public STUN server), TURN with a fresh credential of
        ``party_key`` (:meth:`IcePolicy.servers <ringflow.ice.IcePolicy.servers>`; call it
        per peer connection: the credential expires)."""
        return RTCConfiguration(iceServers=rtc_ice_servers(self.ice, party_key))

    def allowed(self, address: str) -> bool:
        """Whether ``address`` (an IP literal) is inside ``allowed_networks``; hostnames
        (mDNS ``.local`` included) are not."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.allowed_networks)

    def filter_remote(self, sdp: str) -> str:
        """``sdp`` without the candidates whose address is not :meth:`allowed`.

        When a candidate was dropped, ``a=end-of-candidates`` goes too: a browser without
        camera/microphone permission (Firefox, Chromium) offers its host candidates as
        mDNS ``.local`` names only, and with end-of-candidates and no candidate left,
        aioice fails ICE at once, whereas its checks would reach the bridge and teach it
        the client's address (peer-reflexive, RFC 8445 section 7.3.1.3); without it the
        bridge waits for them, bounded by its connect timeout (tests/test_media_mdns.py).
        """
        lines = sdp.splitlines()
        kept = [line for line in lines if (a := candidate_address(line)) is None or self.allowed(a)]
        if len(kept) < len(lines):
            kept = [line for line in kept if line != "a=end-of-candidates"]
        return _join(kept)

    def announce(self, sdp: str) -> str:
        """``sdp`` with ``announced_ip`` in place of the gathered address in every host
        candidate and ``c=`` line (unchanged when ``announced_ip`` is None)."""
        if self.announced_ip is None:
            return sdp
        gathered = set(self.listen_ips)
        out = []
        for line in sdp.splitlines():
            if candidate_address(line) in gathered:
                parts = line.split()
                parts[4] = self.announced_ip
                line = " ".join(parts)
            elif line.startswith("c=IN "):
                _net, _, addr = line[len("c=IN ") :].partition(" ")
                if addr in gathered:
                    line = f"c=IN {'IP6' if ':' in self.announced_ip else 'IP4'} {self.announced_ip}"
            out.append(line)
        return _join(out)


def rtc_ice_servers(policy: IcePolicy, party_key: str, now: float | None = None) -> list[RTCIceServer]:
    """aiortc's ``RTCIceServer`` list of :meth:`IcePolicy.servers
    <ringflow.ice.IcePolicy.servers>` (``username``/``credential`` on the TURN entry); empty
    when nothing is configured."""
    return [
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in policy.servers(party_key, now).ice_servers
    ]


def _join(lines: Iterable[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)

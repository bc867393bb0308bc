"""A client that hides its address behind mDNS ``.local`` names still joins the bridge.

Firefox (and Chromium) without a camera/microphone permission offer host candidates as
``<uuid>.local`` names only; the bridge drops them (resolving would multicast), so the
offer it applies has no candidate left. aioice then fails ICE at once if the offer also
said ``a=end-of-candidates``, although the client's own connectivity checks would come and
tell the bridge its address (a peer-reflexive candidate, RFC 8445 section 7.3.1.3).
``MediaNetwork.filter_remote`` drops ``a=end-of-candidates`` whenever it dropped a
candidate, so the bridge waits for those checks (bounded by its connect timeout).
Found with Firefox ESR's privacy defaults in tests/test_browser_firefox.py (``lan``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from media.bridge import Bridge
from media.models import PeerOffer, Role
from media.network import MediaNetwork, candidate_addresses
from media.peer import ClientPeer, ToneTrack
from ringflow.contracts.common import Party, PartyKind
from tests.fakes import until
from tests.media_helpers import Recorder

LOBBY = Party(kind=PartyKind.DEVICE, id="LOBBY-1")
CALL = "call-mdns"
CANDIDATE_ADDRESS = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( .*)$", re.MULTILINE)


def hide_behind_mdns(sdp: str) -> str:
    """``sdp`` with every candidate's address replaced by an mDNS name, as a browser
    without media permission offers it."""
    return CANDIDATE_ADDRESS.sub(r"\g<1>5f3c2a9e-6b1d-4c8e-9a7f-1e2d3c4b5a69.local\g<3>", sdp)


SDP = (
    "v=0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=candidate:0 1 UDP 2122252543 {a} 49336 typ host\r\n"
    "a=candidate:1 1 TCP 2105524479 {a} 9 typ host tcptype active\r\n"
    "a=end-of-candidates\r\n"
)


def test_end_of_candidates_is_dropped_with_a_candidate() -> None:
    net = MediaNetwork()
    kept = SDP.format(a="127.0.0.1")
    assert net.filter_remote(kept) == kept  # nothing dropped: end-of-candidates stays
    hidden = net.filter_remote(SDP.format(a="0c9b.local"))
    assert candidate_addresses(hidden) == [] and "end-of-candidates" not in hidden
    foreign = net.filter_remote(SDP.format(a="192.0.2.2"))
    assert candidate_addresses(foreign) == [] and "end-of-candidates" not in foreign


@pytest_asyncio.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    network = MediaNetwork()
    network.install()
    b = Bridge(
        network, Recorder(), connect_timeout_s=5.0, disconnect_grace_s=1.0, recordings_dir=tmp_path / "rec"
    )
    try:
        yield b
    finally:
        await b.close()


@pytest.mark.parametrize("with_end_of_candidates", [True, False])
async def test_client_offering_only_mdns_names_joins(bridge: Bridge, with_end_of_candidates: bool) -> None:
    caller = ClientPeer([ToneTrack()])
    try:
        sdp = hide_behind_mdns(await caller.offer())
        if not with_end_of_candidates:
            sdp = sdp.replace("a=end-of-candidates\r\n", "")
        assert candidate_addresses(sdp) and all(a.endswith(".local") for a in candidate_addresses(sdp))
        answer = await bridge.offer(CALL, PeerOffer(party=LOBBY, role=Role.CALLER, sdp=sdp))
        await caller.accept(answer.sdp)
        reporter = bridge.reporter
        assert isinstance(reporter, Recorder)
        await until(lambda: reporter.of(LOBBY) != [], timeout=10)
        assert reporter.of(LOBBY) == ["joined"]
        pc = bridge.rooms[CALL].peers[LOBBY.key()].pc
        ice = pc.getTransceivers()[0].receiver.transport.transport
        # the bridge learned the caller's address from the caller's own checks
        remote = ice._connection._remote_candidates  # aioice's list: prflx ones included
        assert [(c.type, c.host) for c in remote] == [("prflx", "127.0.0.1")]
        stats = await bridge.stats(CALL)  # and media arrives from it
        assert stats is not None and stats.parties[0].packets_received >= 0
    finally:
        await caller.close()

"""The resident web app (``/app``) in headless Firefox ESR, end to end (issue 13 item 5).

The same story as tests/test_browser.py's Chromium test, on the same embedded stack with the
media bridge and Maple Court: the lobby door (an aiortc peer and a push client) calls unit
101; the page rings with the caller's name and the door's video (early media); the
resident answers in Firefox; audio and video flow both ways (the page's inbound RTP
statistics, the door's received frames, and the bridge's traffic for the resident: bytes
both ways); "Open door" comes back as "door opened"; the resident hangs up: ``hangUpVoip``.

Firefox is Debian's ``firefox-esr`` (``./run test`` installs it as root), driven over
WebDriver BiDi by tests/firefox_helpers.py (no geckodriver: none can be had offline here).
Each scenario runs in its own network namespace (``unshare --net``), on one of two networks:

- ``loopback`` (only ``lo``, as Chromium): what blocked Firefox there is that it gathers
  ICE candidates on the default route's address only unless the page holds a
  camera/microphone permission (the fake devices and the skipped prompt grant none), and
  loopback alone has no default route, so it offered no candidate at all ("ICE failed, add
  a STUN server"). The test profile allows camera and microphone for every origin
  (``permissions.default.*``) and turns on loopback candidates with real addresses
  (``media.peerconnection.ice.loopback``, ``obfuscate_host_addresses`` off):
  tests/firefox_helpers.py:FIREFOX_PREFS. Every candidate the page gathered is loopback,
  and the UDP sockets of the bridge and of every Firefox process are bound to loopback.
- ``lan`` (a veth pair inside the namespace with the test address :data:`TEST_ADDRESS`
  and the default route through it; the bridge listens there): Firefox with its own
  privacy defaults offers one mDNS ``.local`` name and nothing else. The bridge drops such
  names, and used to fail ICE at once (the offer said end-of-candidates and no candidate
  was left); it now waits for Firefox's checks and learns its address from them
  (``MediaNetwork.filter_remote``, tests/test_media_mdns.py).

Run as a pytest test, each starts ``python -m tests.test_browser_firefox WORKDIR NETWORK``
in the new namespace and checks the JSON report it writes (``WORKDIR/report.json``) and
its screenshots (``page-talk.png`` during the talk, ``page.png`` at the end). When Firefox
is missing the test fails with the command that installs it. It needs ``unshare --net``
(root, or unprivileged user namespaces with ``--map-root-user``) and, for ``lan``, ``ip``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import run_in_network_namespace
from tests.firefox_helpers import FIREFOX, FIREFOX_DEFAULT_PRIVACY, FIREFOX_PREFS, Firefox
from tests.test_browser import (
    BUILDING,
    EXPECTED_EVENTS,
    Door,
    Page,
    _events_when,
    _loopback,
    _playing,
    _talked_2_s,
    answer_and_talk,
    loopback_up,
    wait_until,
)

SCENARIO_TIMEOUT_S = 240.0
"""The whole scenario (stack start included) must finish within this, seconds."""

TEST_ADDRESS = "10.213.7.1"
TEST_NETWORK = "10.213.7.0/24"
"""The ``lan`` scenario's own address and network, on a veth pair inside its namespace."""


# ---------------------------------------------------------------- pytest side


def run_scenario(tmp_path: Path, network: str) -> dict[str, Any]:
    """Run ``python -m tests.test_browser_firefox TMP_PATH NETWORK`` in a new network
    namespace; returns its ``report.json``. Fails the test, saying why, when Firefox or
    ``unshare`` is missing or the scenario fails."""
    if not os.access(FIREFOX, os.X_OK):
        pytest.fail(
            f"missing {FIREFOX}: install Debian's Firefox ESR "
            "(`apt-get install firefox-esr`; `./run test` does it as root)"
        )
    report = run_in_network_namespace(
        "tests.test_browser_firefox", tmp_path, network, what="Firefox", timeout_s=SCENARIO_TIMEOUT_S + 30
    )
    assert (tmp_path / "page.png").stat().st_size > 0
    return report


def assert_call(report: dict[str, Any]) -> None:
    """What both networks must show: ring with early media, two-way audio and video (the
    page's inbound RTP, the door's frames, the bridge's bytes for the resident both
    ways), open door, hangUpVoip, the history."""
    assert report["browser"].startswith("firefox"), report["browser"]
    assert report["caller_name_shown"] == "Maple Court Lobby"
    assert report["preview"]["video_width"] > 0 and report["preview"]["frames"] > 0
    assert report["preview"]["current_time_after"] > report["preview"]["current_time_before"]
    assert report["preview"]["audio_packets_before_answer"] == 0  # nobody hears the door before answering
    # door -> Firefox: the page's inbound RTP; Firefox -> door: the door's decoded frames
    talk = report["talk"]
    assert talk["audio_packets"] > 0 and talk["audio_bytes"] > 0, talk
    assert talk["video_frames"] > 0 and talk["video_bytes"] > 0, talk
    assert report["door_received"]["audio_frames"] > 0 and report["door_received"]["video_frames"] > 0
    # the bridge's own count for the resident's peer: bytes both ways
    resident = report["bridge_traffic"]["resident"]
    assert resident["bytes_received"] > 0 and resident["bytes_sent"] > 0, resident
    assert resident["audio_bytes_received"] > 0 and resident["video_bytes_received"] > 0, resident
    assert report["open_door"]["result"] == "done" and "door opened" in report["open_door"]["text"]
    assert report["ended"]["end_reason"] == "hangUpVoip"
    events = report["history"]["events"]
    assert [e for e in events if e in EXPECTED_EVENTS] == EXPECTED_EVENTS, events
    assert report["history"]["end_reason"] == "hangUpVoip"
    assert report["history"]["page_row_end_reason"] == "hangUpVoip"
    assert not [m for m in report["console_errors"] if "Content Security Policy" in m], report[
        "console_errors"
    ]


def test_resident_web_app_in_headless_firefox(tmp_path: Path) -> None:
    """Loopback only, as the Chromium test: Firefox's test profile lets it gather 127.0.0.1."""
    report = run_scenario(tmp_path, "loopback")
    assert report["interfaces"] == ["lo"]
    assert_call(report)
    assert report["page_candidates"] and all(_loopback(a) for a in report["page_candidates"])
    assert report["bridge_udp"] and all(_loopback(a) for a in report["bridge_udp"])
    assert report["firefox_udp"] and all(_loopback(a) for a in report["firefox_udp"])


def test_firefox_privacy_defaults_on_a_test_address(tmp_path: Path) -> None:
    """Firefox as a resident has it: its address hidden behind an mDNS ``.local`` name, the
    default route's address only; the bridge on the namespace's own test address."""
    report = run_scenario(tmp_path, "lan")
    assert sorted(report["interfaces"]) == ["lo", "rf0", "rf1"]
    assert_call(report)
    assert report["page_candidates"] and all(a.endswith(".local") for a in report["page_candidates"])
    assert report["bridge_udp"] == [TEST_ADDRESS]


# ---------------------------------------------------------------- scenario (in the namespace)


class FirefoxPage(Page):
    """tests/test_browser.py's :class:`Page` (its ``card`` reader) on Firefox over BiDi."""

    def __init__(self, firefox: Firefox) -> None:
        super().__init__(firefox)
        self.firefox = firefox

    async def js(self, script: str, *args: Any) -> Any:
        return await self.firefox.js(script, *args)

    async def click(self, css: str) -> None:
        await self.firefox.click(css)


def firefox_udp_addresses(firefox: Firefox) -> set[str]:
    """Local addresses of the UDP sockets of Firefox and its child processes (WebRTC's
    sockets live in the socket process)."""
    from media.network import udp_addresses

    found: set[str] = set()
    for pid in firefox.pids():
        with contextlib.suppress(OSError):  # gone meanwhile
            found |= udp_addresses(pid)
    return found


def lan_up() -> list[str]:
    """In this (new) network namespace: ``lo`` up, and a veth pair ``rf0``/``rf1`` (both
    ends here) with :data:`TEST_ADDRESS` on ``rf0`` and the default route through it, so
    Firefox has a default address, as on a LAN. Nothing can leave the namespace: what is
    sent to another address ends at ``rf1``, which forwards nothing. Returns the interface
    names."""
    ip = shutil.which("ip")
    if ip is None:
        raise RuntimeError("`ip` (iproute2) is missing: the lan scenario sets up its own interface with it")
    for args in [
        ["link", "set", "lo", "up"],
        ["link", "add", "rf0", "type", "veth", "peer", "name", "rf1"],
        ["addr", "add", f"{TEST_ADDRESS}/24", "dev", "rf0"],
        ["link", "set", "rf1", "up"],
        ["link", "set", "rf0", "up"],
        ["route", "add", "default", "dev", "rf0"],
    ]:
        subprocess.run([ip, *args], check=True)
    return [name for _, name in socket.if_nameindex()]


async def scenario(workdir: Path, network: str = "loopback") -> dict[str, Any]:
    """The whole story (module docstring) on ``network``: ``loopback`` (only ``lo``, the
    test profile's prefs) or ``lan`` (:func:`lan_up`, Firefox's own privacy defaults, the
    bridge on :data:`TEST_ADDRESS`); returns the figures of ``report.json``."""
    from media.network import MediaNetwork, tree_udp_addresses
    from ringflow.client import Backend
    from ringflow.contracts.common import Party, PartyKind
    from ringflow.directory_load import load_building, read_building
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from store.db import create_pool

    if network == "lan":
        report: dict[str, Any] = {"interfaces": lan_up()}
        media: dict[str, Any] = {
            "media_listen_ips": [TEST_ADDRESS],
            "media_allowed_networks": [TEST_NETWORK],
        }
        prefs = FIREFOX_DEFAULT_PRIVACY
    else:
        report = {"interfaces": loopback_up()}
        media = {}
        prefs = FIREFOX_PREFS
    report["network"] = network
    # the door's aiortc peer gathers where the bridge listens
    MediaNetwork(listen_ips=tuple(media.get("media_listen_ips", ["127.0.0.1"]))).install()
    t0 = time.monotonic()
    settings = isolated_settings(workdir / "data", media_enabled=True, **media)
    async with EmbeddedStack(settings, ui=False) as stack:
        report["stack_start_s"] = round(time.monotonic() - t0, 2)
        pool = await create_pool(stack.settings.database_url, min_size=1, max_size=2)
        try:
            await load_building(pool, read_building(BUILDING))
        finally:
            await pool.close()
        backend = Backend(stack.api_url, stack.settings.api_key)
        unit = (await backend.http.get("/v1/units/101")).raise_for_status().json()
        resident = Party(kind=PartyKind.USER, id=unit["residents"][0])
        door = Door(stack.api_url, await backend.token(Party(kind=PartyKind.DEVICE, id="LOBBY-1")))
        resident_token = await backend.token(resident)
        firefox = Firefox(workdir, prefs)
        try:
            await door.start()
            await firefox.start()
            page = FirefoxPage(firefox)
            report["browser"] = f"{firefox.name} {firefox.version}".lower()
            t = time.monotonic()
            await firefox.get(f"{stack.api_url}/app?token={resident_token}")
            await wait_until(
                "push channel online",
                lambda: page.js("return document.querySelector('#push-state').dataset.state === 'online'"),
            )
            report["sign_in_to_online_s"] = round(time.monotonic() - t, 2)
            assert "token=" not in await page.js("return location.href"), "the token stays in the URL"
            assert await page.js("return sessionStorage.getItem('ringflow.token')") == resident_token

            # the door calls unit 101: the page rings with the name and the door's video
            t = time.monotonic()
            call_id = await door.call("101")
            # the card rings once the page saw that the call is live (issue 11 item 2: first
            # state "checking", hidden)
            card = await wait_until(
                "the page rings", lambda: page.card(call_id), lambda c: c["state"] != "checking"
            )
            report["ring_shown_s"] = round(time.monotonic() - t, 2)
            report["caller_name_shown"] = card["caller"]
            assert card["state"] == "ringing" and card["timer"].startswith("Ringing"), card
            card = await wait_until("early-media preview playing", lambda: page.card(call_id), _playing)
            before = card["video"]["time"]
            await asyncio.sleep(1.0)
            card = await page.card(call_id)
            assert card is not None
            report["preview"] = {
                "shown_after_s": round(time.monotonic() - t, 2),
                "video_width": card["video"]["width"],
                "video_height": card["video"]["height"],
                "current_time_before": before,
                "current_time_after": card["video"]["time"],
                "frames": int(card["data"].get("videoFrames", "0")),
                "audio_packets_before_answer": int(card["data"].get("audioPackets", "0")),
            }

            # answer: talk, two-way audio and video
            card, report["talk"] = await answer_and_talk(page, door, call_id)
            timer = await wait_until("keepTime running", lambda: page.card(call_id), _talked_2_s)
            report["talk"]["timer"] = timer["timer"]
            await wait_until("door audio", lambda: door.received("audio") > 25)
            report["door_received"] = {
                "audio_frames": door.received("audio"),
                "video_frames": door.received("video"),
            }

            # loopback only: the page's candidates, Firefox's and the bridge's sockets
            report["page_candidates"] = json.loads(card["data"].get("localCandidates", "[]"))
            assert stack.media.pid is not None
            report["bridge_udp"] = sorted(tree_udp_addresses(stack.media.pid))  # node + processes
            report["firefox_udp"] = sorted(firefox_udp_addresses(firefox))
            await page.js("window.scrollTo(0, 0)")
            await firefox.screenshot(workdir / "page-talk.png")  # the talk, for a person

            # open the door from the call: the device acknowledges, the page shows it
            t = time.monotonic()
            await page.click(f'.call[data-call-id="{call_id}"] .open-door')
            card = await wait_until(
                "open door result",
                lambda: page.card(call_id),
                lambda c: c["action"]["result"] not in (None, "pending"),
            )
            report["open_door"] = {
                "result": card["action"]["result"],
                "text": card["action"]["text"].lower(),
                "round_trip_s": round(time.monotonic() - t, 2),
                "device_requests": len(door.actions),
            }

            # hang up: the end reason from call_ended, then the history
            await page.click(f'.call[data-call-id="{call_id}"] .hang-up')
            card = await wait_until("call ended", lambda: page.card(call_id), lambda c: c["state"] == "ended")
            report["ended"] = {
                "end_reason": card["data"].get("endReason"),
                "keep_time_s": card["data"].get("keepTime"),
                "status": card["status"],
            }
            row = await wait_until(
                "the call in the page's history",
                lambda: page.js(
                    'const r = document.querySelector(`#history .entry[data-call-id="${arguments[0]}"]`);'
                    "return r && r.dataset.endReason"
                    " ? {reason: r.dataset.endReason, text: r.innerText} : null",
                    call_id,
                ),
            )
            view = await wait_until(
                "finishVoip in the history",
                lambda: _events_when(backend, call_id, "finishVoip"),
            )
            report["history"] = {
                "events": [e["name"] for e in view["events"]],
                "end_reason": view.get("end_reason"),
                "page_row_end_reason": row["reason"],
                "page_row": row["text"],
            }
            report["bridge_traffic"] = bridge_traffic(view, resident_key=f"user:{resident.id}")
            report["console_errors"] = firefox.console_errors()
        finally:
            with contextlib.suppress(Exception):  # what the page showed last, for a person
                await firefox.screenshot(workdir / "page.png")
            await firefox.quit()
            await door.close()
            await backend.aclose()
    return report


def bridge_traffic(view: dict[str, Any], resident_key: str) -> dict[str, Any]:
    """The bridge's traffic per role from the call's ``callEnded`` event (docs/media.md:
    ``{"traffic": [PartyTraffic...]}``): ``{"resident": {...}, "door": {...}}``."""
    out: dict[str, Any] = {}
    for event in view["events"]:
        data = event.get("data") or {}
        for t in data.get("traffic", []) if isinstance(data, dict) else []:
            party = t.get("party") or {}
            key = f"{party.get('kind')}:{party.get('id')}"
            role = "resident" if key == resident_key else "door" if t.get("role") == "caller" else key
            out[role] = {k: v for k, v in t.items() if k != "party"}
    return out


def main(argv: list[str]) -> int:
    """``python -m tests.test_browser_firefox WORKDIR [loopback|lan]``: run the scenario,
    write ``WORKDIR/report.json``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    workdir = Path(argv[1]).resolve()
    network = argv[2] if len(argv) > 2 else "loopback"

    async def run() -> dict[str, Any]:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            return await scenario(workdir, network)

    report = asyncio.run(run())
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The resident web app (``/app``, issue 3 item 7) in real headless Chromium, end to end.

The embedded stack runs with the media bridge (PostgreSQL, Temporal, worker, API, bridge
as processes) and Maple Court (``examples/building.yaml``). A resident of unit 101 signs
in to the page with a party token; the lobby door (an aiortc peer sending a tone and a
test pattern, and a push client that acknowledges "open door") calls unit 101; the page
rings with the caller's name and shows the door's video before the answer (early media);
the resident answers, audio and video flow both ways, "Open door" comes back as "door
opened", the resident hangs up; the history shows it all.

Loopback only. Chromium has switches to ADD loopback candidates
(``--allow-loopback-in-peer-connection``) and to stop hiding host addresses behind mDNS
(``--disable-features=WebRtcHideLocalIpsWithMdns``), but none that leaves out the other
interfaces: with the ``webrtc.ip_handling_policy`` preference it gathers on every
interface (``default``), on none (``default_public_interface_only`` without STUN) or on
the default route's address (``default_public_and_private_interfaces``), measured on
Chromium 156. So the scenario runs in a fresh network namespace (``unshare --net``:
only ``lo``, no route anywhere), where Chromium can gather nothing but 127.0.0.1, and no
process of the test (browser background services included) can reach another host.
The test still checks it: every candidate the page gathered (its offer SDP and its RTC
stats) is loopback, and the UDP sockets of the bridge and of Chromium are bound to
loopback only.

Run as a pytest test, it starts ``python -m tests.test_browser WORKDIR`` in the new
namespace and checks the JSON report the scenario writes (``WORKDIR/report.json``).
Chromium and chromedriver are Debian's (``./run test`` installs them as root); when they
are missing the test fails with the command that installs them. It needs
``unshare --net`` (root, or unprivileged user namespaces with ``--map-root-user``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import ipaddress
import json
import logging
import os
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.browser_helpers import CHROMEDRIVER, CHROMIUM, require_chromium, run_in_network_namespace

ROOT = Path(__file__).resolve().parent.parent
BUILDING = ROOT / "examples" / "building.yaml"

SCENARIO_TIMEOUT_S = 300.0
"""The whole scenario (stack start included) must finish within this, seconds."""

STEP_TIMEOUT_S = 30.0
"""Longest wait for one thing the page or the call should do, seconds."""

EXPECTED_EVENTS = [
    "answered",
    "calling",
    "customAction",
    "customActionResult",
    "hangUpVoip",
    "endVoip",
    "finishVoip",
]
"""Events of the call's history, in this order (docs/events.md, docs/media.md)."""

RINGING_OPEN_EVENTS = ["customAction", "customActionResult", *EXPECTED_EVENTS]
"""The Chromium scenario's call: "Open door" from the ringing screen first (policy
``open_while_ringing``), then :data:`EXPECTED_EVENTS`."""

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # root in CI; the network namespace is the fence here
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1024,900",
    # WebRTC on loopback: add 127.0.0.1/::1 host candidates, and show addresses as they are
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate",
    # camera and microphone: Chromium's generated test pattern and beep, permission granted
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # nothing in the background (it could not get out anyway)
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


# ---------------------------------------------------------------- pytest side


def test_resident_web_app_in_headless_chromium(tmp_path: Path) -> None:
    require_chromium()
    report = run_in_network_namespace(
        "tests.test_browser", tmp_path, what="browser", timeout_s=SCENARIO_TIMEOUT_S + 30
    )
    assert report["interfaces"] == ["lo"]
    assert report["caller_name_shown"] == "Maple Court Lobby"
    assert report["preview"]["video_width"] > 0 and report["preview"]["frames"] > 0
    assert report["preview"]["current_time_after"] > report["preview"]["current_time_before"]
    assert report["preview"]["audio_packets_before_answer"] == 0  # nobody hears the door before answering
    assert report["talk"]["audio_packets"] > 0 and report["talk"]["video_frames"] > 0
    assert report["door_received"]["audio_frames"] > 0 and report["door_received"]["video_frames"] > 0
    assert report["open_door"]["result"] == "done" and "door opened" in report["open_door"]["text"]
    assert report["ended"]["end_reason"] == "hangUpVoip"
    assert report["page_candidates"] and all(_loopback(a) for a in report["page_candidates"])
    assert report["bridge_udp"] and all(_loopback(a) for a in report["bridge_udp"])
    assert report["chromium_udp"] and all(_loopback(a) for a in report["chromium_udp"])
    events = report["history"]["events"]
    assert [e for e in events if e in RINGING_OPEN_EVENTS] == RINGING_OPEN_EVENTS, events
    assert report["history"]["page_row_end_reason"] == "hangUpVoip"
    detail = report["detail"]  # the history row's detail: the call's timeline picture
    assert detail["call_id"] == detail["clicked"] and detail["svg_width"] > 300, detail
    assert len(detail["lanes"]) == 1 and detail["lanes"][0].startswith("1. "), detail
    assert detail["phases"][0][-2:] == ["talk", "finish"], detail
    room_events = [e for e in EXPECTED_EVENTS if not e.startswith("customAction")]  # those: the call's row
    assert [e for e in detail["events"][0] if e in EXPECTED_EVENTS] == room_events, detail
    assert not [m for m in report["console_errors"] if "Content Security Policy" in m], report[
        "console_errors"
    ]
    # issue 11 item 2: calls over before the sign-in are history, never a card, no error
    stale = report["stale"]
    assert stale["missed"]["missed"] == "true" and stale["elsewhere"]["missed"] == "false", stale
    assert stale["elsewhere"]["answeredBy"].startswith("user:"), stale
    assert stale["cards"] == 0 and stale["errors"] == "" and stale["shown"] == [], stale
    assert [m for m in report["console_errors"] if "No microphone" in m] == []
    # item 1: first-run step, service worker, installable, notification and ring in the
    # background, both stopped when the neighbour answered
    assert report["setup"]["before"]["shown"] and "background" in report["setup"]["before"]["text"]
    assert report["setup"]["permission"] == "granted" and report["setup"]["sw"] == "ready", report["setup"]
    assert report["installability_errors"] == [], report["installability_errors"]
    assert report["manifest"]["display"] == "standalone" and report["manifest"]["start_url"] == "/app"
    bg = report["background"]
    assert bg["notification"]["title"].startswith("Maple Court Lobby") and bg["notified"] == "true", bg
    assert bg["ring_beeps"] >= 2 and bg["ring_beeps_later"] == bg["ring_beeps"], bg
    assert bg["closed_after_answer_s"] < 5 and "Answered by" in bg["card_status"], bg
    # item 5: the do-not-disturb switch
    dnd = report["dnd"]
    assert dnd["on"]["shown"] and dnd["on"]["state"].startswith("Do not disturb until"), dnd
    assert dnd["off"]["state"] == "Calls ring this device." and dnd["manager_flag"] is False, dnd
    presence = report["presence"]  # issue 10: away from the app, one presence for the backend too
    assert presence["away"]["backend"] == "away" and presence["away"]["state"].startswith("Away"), presence
    assert presence["back"]["state"].startswith("Available"), presence
    # item 3: the ringing screen; open door while ringing, audited as the in-call action
    ringing = report["ringing_screen"]
    assert ringing == {**ringing, "self_view_shown": False, "details_open": False, "stats_shown": False}
    assert ringing["open_door_while_ringing"] and ringing["place"] == "Unit 101" and ringing["error"] == ""
    assert report["talk"]["self_view_shown"] is True
    assert report["open_while_ringing"] == {
        **report["open_while_ringing"],
        "result": "done",
        "state": "ringing",
    }
    assert [a.get("while_ringing") for a in report["history"]["custom_actions"]] == [True, None]
    # item 4: the call log
    row = report["history"]["page_row_data"]
    assert row["doorOpened"] == "true" and row["missed"] == "false", row
    assert "You answered" in report["history"]["page_row"] and "Talk" in report["history"]["page_row"]
    for width, o in report["overflow"].items():
        assert o["scroll"] <= o["inner"], (width, o)
    assert report["overflow_ringing_390"]["scroll"] <= report["overflow_ringing_390"]["inner"]
    # the visitor snapshot (the bridge's JPEG of the door's early media); none for the call
    # whose door never sent video
    snaps = report["snapshots"]
    assert snaps[report["detail"]["call_id"]] > 0 and snaps[stale["missed"]["callId"]] == 0, snaps
    # issue 10: Pass on a unit's call; the missed call's follow-up from the call log
    passed = report["pass"]
    assert passed["card"] == {"pass": "Pass", "decline": "Decline"}, passed
    assert passed["outcomes"][0] == "passed" and "passVoip" in passed["events"], passed
    follow_up = report["follow_up"]
    assert follow_up["missed"] == "true" and follow_up["open"] == "Open door", follow_up
    assert follow_up["result"] == {"result": "done", "text": "Door opened"}, follow_up
    assert follow_up["door_actions"][-1] is True, follow_up
    # item 6: Simplified Chinese
    assert report["ringing_zh_answer"] == "接听"
    assert report["history_zh"]["lang"] == "zh-CN" and "通话记录" in report["history_zh"]["title"]
    # item 7: axe-core, no serious or critical violation anywhere it ran
    for where, violations in report["axe"].items():
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, (where, bad)
    for name, path in report["screenshots"].items():
        assert Path(path).stat().st_size > 10_000, name


def test_app_files_headers_and_csp() -> None:
    """``/app`` serves the page and its three files with their media types, a strict CSP
    naming the push channel's WebSocket origin, and nothing outside its table."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import problems
    from api.routers import webapp

    app = FastAPI()
    problems.install(app)
    app.include_router(webapp.router)
    with TestClient(app, base_url="http://127.0.0.1:8080") as http:
        page = http.get("/app")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
        assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'"
        assert csp["connect-src"] == "'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"
        assert csp["frame-ancestors"] == "'none'" and page.headers["x-content-type-options"] == "nosniff"
        for name, kind in [
            ("app.js", "text/javascript"),
            ("i18n.js", "text/javascript"),
            ("app.css", "text/css"),
            ("icon.svg", "image/svg+xml"),
            ("manifest.webmanifest", "application/manifest+json"),
        ]:
            r = http.get(f"/app/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), (name, r.headers)
            assert f'src="app/{name}"' in page.text or f'href="app/{name}"' in page.text
            again = http.get(f"/app/{name}", headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # CSP: no inline code
        assert csp["manifest-src"] == "'self'" and csp["worker-src"] == "'self'"
        # the service worker: scope /app (the page, above /app/), allowed by its header
        worker = http.get("/app/sw.js")
        assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/javascript")
        assert worker.headers["service-worker-allowed"] == "/app"
        assert "service-worker-allowed" not in page.headers
        for bad in ["/app/../app.py", "/app/webapp.py", "/app/index.htm", "/app/%2e%2e%2fapp.py"]:
            r = http.get(bad)
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", bad
        r = http.get("/app/?token=abc", follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == "/app?token=abc"
        evil = http.get("/app", headers={"Host": "x;script-src *"})
        assert "script-src *" not in evil.headers["content-security-policy"]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # an mDNS name or garbage: not loopback
        return False


# ---------------------------------------------------------------- scenario (in the namespace)


def loopback_up() -> list[str]:
    """Bring ``lo`` up in this (new) network namespace; returns the interface names
    (``["lo"]`` in a fresh namespace). Raises ``OSError`` without CAP_NET_ADMIN."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))
    return [name for _, name in socket.if_nameindex()]


async def wait_until(
    what: str,
    probe: Callable[[], Any],
    ok: Callable[[Any], Any] = bool,
    timeout: float = STEP_TIMEOUT_S,
) -> Any:
    """Poll ``probe`` (sync or async) every 0.1 s until ``ok(value)`` is true; returns that
    value. Raises ``TimeoutError`` naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last is not None and ok(last):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        await asyncio.sleep(0.1)


@dataclass
class Door:
    """The lobby door station: a push client that acknowledges ``custom_action`` ("door
    opened") and, per call, an aiortc peer sending a 440 Hz tone and a test pattern."""

    api_url: str
    token: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    peer: Any = None
    peers: list[Any] = field(default_factory=list)
    push: Any = None
    http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        from ringflow.client import PartyClient
        from ringflow.contracts.common import Party, PartyKind

        self.http = httpx.AsyncClient(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        )
        self.push = PartyClient(
            self.api_url, Party(kind=PartyKind.DEVICE, id="LOBBY-1"), self.token, on_message=self._on_push
        )
        await self.push.start()

    async def _on_push(self, _client: Any, rec: Any) -> None:
        if rec.type != "custom_action":
            return
        payload = rec.frame["payload"]
        self.actions.append(payload)
        assert self.http is not None
        r = await self.http.post(
            f"/v1/calls/{rec.call_id}/actions/{payload['action_id']}/ack",
            json={"ok": True, "detail": "door opened"},
        )
        logging.info("door: ack %s -> %s %s", payload["action_id"], r.status_code, r.text[:200])

    async def place(self, target: dict[str, Any], policy: dict[str, Any] | None = None) -> str:
        """``POST /v1/calls`` (video) to ``target`` (``{"unit_id": ...}`` or ``{"callees":
        [...]}``) with the device token and ``policy`` (None: the unit's); returns the call id."""
        assert self.http is not None
        body: dict[str, Any] = {"caller": {"kind": "device", "id": "LOBBY-1"}, "room_type": "video", **target}
        if policy is not None:
            body["policy"] = policy
        r = await self.http.post(
            "/v1/calls", json=body, headers={"Idempotency-Key": f"browser-{uuid.uuid4().hex[:12]}"}
        )
        assert r.status_code in (200, 201, 202), r.text
        return str(r.json()["call_id"])

    async def join(self, call_id: str) -> None:
        """Join the call's media room as the caller (a tone and a test pattern, complete
        ICE); :attr:`peer` is this call's peer from now on."""
        from aiortc import VideoStreamTrack

        from media.peer import ClientPeer, ToneTrack

        assert self.http is not None
        self.peer = ClientPeer([ToneTrack(440), VideoStreamTrack()])
        self.peers.append(self.peer)
        offer = await self.peer.offer()
        r = await self.http.post(f"/v1/calls/{call_id}/media", json={"sdp": offer, "type": "offer"})
        assert r.status_code == 200, r.text
        await self.peer.accept(r.json()["sdp"])

    async def call_to(self, callees: list[dict[str, str]], policy: dict[str, Any]) -> str:
        """Place a video call to ``callees`` with ``policy`` and join its media room."""
        call_id = await self.place({"callees": callees}, policy)
        await self.join(call_id)
        return call_id

    async def call(self, unit_id: str, policy: dict[str, Any] | None = None) -> str:
        """Place a video call to ``unit_id`` and join its media room; returns the call id."""
        call_id = await self.place({"unit_id": unit_id}, policy)
        await self.join(call_id)
        return call_id

    def received(self, kind: str) -> int:
        """Frames the door received on ``kind`` tracks."""
        return sum(r.frames for r in self.peer.received if r.kind == kind) if self.peer else 0

    async def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()
        if self.push is not None:
            await self.push.close()
        if self.http is not None:
            await self.http.aclose()


@dataclass
class Resident:
    """Another resident (an agent over REST and an aiortc peer): answers a call that rings
    them too and talks (a 660 Hz tone), then hangs up."""

    api_url: str
    token: str
    user_id: str
    peers: list[Any] = field(default_factory=list)
    http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        )

    async def rung(self, call_id: str) -> bool:
        """This resident's room of ``call_id`` is ringing (phase wait)."""
        assert self.http is not None
        r = await self.http.get(f"/v1/calls/{call_id}")
        if r.status_code != 200:
            return False
        return any(
            a["listener"]["id"] == self.user_id and a["phase"] == "wait" for a in r.json().get("attempts", [])
        )

    async def answer_and_talk(self, call_id: str) -> None:
        """Answer ``call_id`` and join its media room (the call goes to talk)."""
        from media.peer import ClientPeer, ToneTrack

        assert self.http is not None
        r = await self.http.post(f"/v1/calls/{call_id}/answer")
        assert r.status_code == 200, r.text
        peer = ClientPeer([ToneTrack(660)])
        self.peers.append(peer)
        r = await self.http.post(
            f"/v1/calls/{call_id}/media", json={"sdp": await peer.offer(), "type": "offer"}
        )
        assert r.status_code == 200, r.text
        await peer.accept(r.json()["sdp"])

    async def hang_up(self, call_id: str) -> None:
        assert self.http is not None
        r = await self.http.post(f"/v1/calls/{call_id}/hang-up")
        assert r.status_code == 200, r.text

    async def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()
        if self.http is not None:
            await self.http.aclose()


AXE_JS = Path(importlib.util.find_spec("axe_core_python").submodule_search_locations[0]) / "axe.min.js"  # type: ignore[union-attr,index]
"""axe-core, vendored at install time by the ``test`` extra (PyPI ``axe-core-python``: its
``axe.min.js``, MIT); never downloaded by the test."""

SHOWN_CALLS_JS = """
window.__shownCalls = [];
new MutationObserver(() => {
  for (const c of document.querySelectorAll(".call")) {
    const id = c.dataset.callId;
    if (!c.hidden && !window.__shownCalls.includes(id)) window.__shownCalls.push(id);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["hidden"]});
"""
"""Run in the page before its own scripts (CDP): every call id whose card was ever shown."""

NOTIFICATIONS_JS = """
return navigator.serviceWorker.getRegistration("/app").then(
  (reg) => reg ? reg.getNotifications() : []).then(
  (ns) => ns.map((n) => ({title: n.title, body: n.body, tag: n.tag})));
"""
"""The notifications the app's service worker registration shows (any page of the origin)."""


class Page:
    """The app in one Chromium tab, driven by Selenium. Every WebDriver call runs in a
    thread, so the door's media keeps flowing on this event loop."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def click(self, css: str) -> None:
        """A real click (WebDriver input events: a user gesture, as a person's)."""
        from selenium.webdriver.common.by import By

        def click() -> None:
            self.driver.find_element(By.CSS_SELECTOR, css).click()

        await asyncio.to_thread(click)

    async def shot(self, workdir: Path, name: str) -> str:
        """Save a screenshot ``WORKDIR/<name>.png`` for a person to look at; returns its path."""
        path = workdir / f"{name}.png"
        await asyncio.to_thread(self.driver.save_screenshot, str(path))
        return str(path)

    async def width(self, px: int, height: int = 900) -> None:
        """The window ``px`` CSS pixels wide (the layout's viewport)."""
        await asyncio.to_thread(self.driver.set_window_size, px, height)
        await wait_until(
            f"viewport {px} px", lambda: self.js("return innerWidth"), lambda w: abs(w - px) <= 20
        )

    async def overflow(self) -> dict[str, int]:
        """``scrollWidth`` of the document and ``innerWidth``: no sideways scroll when <=."""
        return dict(await self.js("return {scroll: document.documentElement.scrollWidth, inner: innerWidth}"))

    async def language(self, code: str) -> None:
        """Choose ``code`` in the language switch, as a person would."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.select import Select

        def choose() -> None:
            Select(self.driver.find_element(By.CSS_SELECTOR, "#lang")).select_by_value(code)

        await asyncio.to_thread(choose)
        await wait_until(
            f"language {code}", lambda: self.js("return document.documentElement.lang"), lambda v: v == code
        )

    async def axe(self) -> list[dict[str, Any]]:
        """axe-core's violations on the page as it is now (impact, rule, first targets)."""
        if not await self.js("return typeof window.axe === 'object'"):
            await self.js(AXE_JS.read_text())
        return list(
            await self.js(
                """
                return axe.run(document, {resultTypes: ["violations"]}).then((r) => r.violations.map((v) => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
                })));
                """
            )
        )

    async def card(self, call_id: str) -> dict[str, Any] | None:
        """What the call's card shows: state, texts, data-* figures, the remote video."""
        return await self.js(
            """
            const card = document.querySelector(`.call[data-call-id="${arguments[0]}"]`);
            if (!card) return null;
            const v = card.querySelector("video.remote");
            const q = (s) => card.querySelector(s);
            return {
              state: card.dataset.state, data: {...card.dataset},
              caller: q(".caller").textContent, status: q(".status").textContent,
              timer: q(".timer").textContent, error: q(".error").textContent,
              action: {
                result: q(".action-result").dataset.result || null,
                text: q(".action-result").textContent,
                action_id: q(".action-result").dataset.actionId || null,
              },
              openDoorVisible: !q(".open-door").hidden,
              hidden: card.hidden,
              selfViewShown: !q("video.local").hidden && q("video.local").getBoundingClientRect().width > 0,
              detailsOpen: q(".details").open,
              statsShown: q(".stats").checkVisibility(),
              answerText: q(".answer").textContent,
              video: {width: v.videoWidth, height: v.videoHeight, time: v.currentTime, paused: v.paused},
            };
            """,
            call_id,
        )


def start_chromium(workdir: Path) -> Any:
    """Headless Debian Chromium through /usr/bin/chromedriver (no Selenium Manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"webrtc.ip_handling_policy": "default"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(STEP_TIMEOUT_S)
    return driver


def process_udp_addresses(marker: str) -> set[str]:
    """Local addresses of the UDP sockets of every process whose command line has ``marker``."""
    from media.network import udp_addresses

    found: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found |= udp_addresses(pid)
        except OSError:  # gone meanwhile
            continue
    return found


async def scenario(workdir: Path) -> dict[str, Any]:
    """The whole story (module docstring); returns the figures of ``report.json``."""
    from media.network import MediaNetwork, tree_udp_addresses
    from ringflow.client import Backend
    from ringflow.contracts.common import Party, PartyKind
    from ringflow.directory_load import load_building, read_building
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from store.db import create_pool

    report: dict[str, Any] = {"interfaces": loopback_up(), "screenshots": {}, "axe": {}}
    MediaNetwork().install()  # the door's aiortc peer gathers on 127.0.0.1 only
    t0 = time.monotonic()
    settings = isolated_settings(workdir / "data", media_enabled=True)
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
        neighbour_id = unit["residents"][1]  # the other resident of unit 101 (an agent)
        door = Door(stack.api_url, await backend.token(Party(kind=PartyKind.DEVICE, id="LOBBY-1")))
        neighbour = Resident(
            stack.api_url, await backend.token(Party(kind=PartyKind.USER, id=neighbour_id)), neighbour_id
        )
        resident_token = await backend.token(resident)
        both = [{"kind": "user", "id": resident.id}, {"kind": "user", "id": neighbour_id}]
        together = {"strategy": "simultaneous", "ring_timeout_s": 60}
        driver = None
        shots = report["screenshots"]
        try:
            await door.start()
            await neighbour.start()

            # calls that end before the resident signs in: their pushes wait unacknowledged
            # (issue 11 item 2): one the door gave up on (missed), one the neighbour answered
            missed_id = await door.place({"callees": both[:1]}, {"ring_timeout_s": 60})
            await wait_until(
                "the resident rung (missed call)", lambda: _rung(backend, missed_id, resident.id)
            )
            (await door.http.post(f"/v1/calls/{missed_id}/hang-up")).raise_for_status()  # type: ignore[union-attr]
            elsewhere_id = await door.call_to(both, together)
            await wait_until("the neighbour rung", lambda: neighbour.rung(elsewhere_id))
            await neighbour.answer_and_talk(elsewhere_id)
            await wait_until("talk (answered elsewhere)", lambda: _phase_is(backend, elsewhere_id, "talk"))
            await neighbour.hang_up(elsewhere_id)
            await wait_until("ended (answered elsewhere)", lambda: _phase_is(backend, elsewhere_id, "ended"))
            await wait_until("ended (missed)", lambda: _phase_is(backend, missed_id, "ended"))

            driver = await asyncio.to_thread(start_chromium, workdir)
            page = Page(driver)
            await asyncio.to_thread(
                driver.execute_cdp_cmd, "Page.addScriptToEvaluateOnNewDocument", {"source": SHOWN_CALLS_JS}
            )
            await asyncio.to_thread(
                driver.execute_cdp_cmd,
                "Browser.grantPermissions",
                # (it denies what it does not name: camera and microphone are named, so the
                # page keeps the media permission Chromium gathers loopback candidates for)
                {"origin": stack.api_url, "permissions": ["notifications", "audioCapture", "videoCapture"]},
            )
            await page.width(390, 844)
            t = time.monotonic()
            await asyncio.to_thread(driver.get, f"{stack.api_url}/app?token={resident_token}")
            await wait_until(
                "push channel online",
                lambda: page.js("return document.querySelector('#push-state').dataset.state === 'online'"),
            )
            report["sign_in_to_online_s"] = round(time.monotonic() - t, 2)
            assert "token=" not in await page.js("return location.href"), "the token stays in the URL"
            assert await page.js("return sessionStorage.getItem('ringflow.token')") == resident_token

            # stale pushes: history entries, never an incoming-call card, no media error
            stale = await wait_until(
                "the ended calls in the history",
                lambda: page.js(
                    """
                    const e = (id) => document.querySelector(`#history .entry[data-call-id="${id}"]`);
                    const [m, a] = [e(arguments[0]), e(arguments[1])];
                    return m && a && a.dataset.answeredBy && a.innerText.includes(arguments[2]) ? {
                      missed: {...m.dataset, text: m.innerText}, elsewhere: {...a.dataset, text: a.innerText},
                      shown: window.__shownCalls, cards: document.querySelectorAll(".call").length,
                      errors: [...document.querySelectorAll(".error")].map((x) => x.textContent).join(""),
                    } : null;
                    """,
                    missed_id,
                    elsewhere_id,
                    "Bob Moreau" if neighbour_id == "bob" else neighbour_id,
                ),
            )
            report["stale"] = stale
            shots["first_run_390"] = await page.shot(workdir, "first-run-en-390")

            # the first-run step: why, then sound and notifications allowed (a real click)
            setup = await page.js(
                "const s = document.querySelector('#setup');"
                "return {shown: !s.hidden, text: s.innerText, sw: document.body.dataset.serviceWorker};"
            )
            await page.click("#setup-enable")
            report["setup"] = await wait_until(
                "ringing enabled",
                lambda: page.js(
                    "return document.querySelector('#setup').hidden && document.body.dataset.sound === 'on'"
                    " ? {notice: document.querySelector('#notice').textContent,"
                    " permission: Notification.permission, sw: document.body.dataset.serviceWorker} : null"
                ),
            )
            report["setup"]["before"] = setup
            installability = await asyncio.to_thread(
                driver.execute_cdp_cmd, "Page.getInstallabilityErrors", {}
            )
            report["installability_errors"] = installability.get("installabilityErrors", [])
            report["manifest"] = await page.js(
                "return fetch('app/manifest.webmanifest').then((r) => r.json())"
                ".then((m) => ({name: m.name, start_url: m.start_url, display: m.display}))"
            )
            await page.width(1280)
            report["axe"]["idle_en"] = await page.axe()

            # do-not-disturb for an hour, then off again (PUT/DELETE /v1/me/do-not-disturb)
            dnd_js = (
                "const d = document.querySelector('#dnd');"
                "return {shown: !d.hidden,"
                " pressed: d.querySelector('#dnd-toggle').getAttribute('aria-pressed'),"
                " state: d.querySelector('#dnd-state').textContent};"
            )
            await page.click("#dnd-toggle")
            on = await wait_until(
                "do-not-disturb on", lambda: page.js(dnd_js), lambda d: d["pressed"] == "true"
            )
            dnd_api = (
                await backend.http.get(f"/v1/users/{resident.id}")
            ).json()  # the manager's flag stays off
            await page.click("#dnd-toggle")
            off = await wait_until(
                "do-not-disturb off", lambda: page.js(dnd_js), lambda d: d["pressed"] == "false"
            )
            report["dnd"] = {"on": on, "off": off, "manager_flag": dnd_api.get("do_not_disturb")}

            # away and back (PUT /v1/me/presence; issue 10): the backend sees the same presence
            away_js = (
                "return {pressed: document.querySelector('#away-toggle').getAttribute('aria-pressed'),"
                " state: document.querySelector('#presence-state').textContent};"
            )
            await page.click("#away-toggle")
            away = await wait_until("away", lambda: page.js(away_js), lambda d: d["pressed"] == "true")
            away["backend"] = (await backend.http.get(f"/v1/users/{resident.id}/presence")).json()["status"]
            await page.click("#away-toggle")
            back = await wait_until("back", lambda: page.js(away_js), lambda d: d["pressed"] == "false")
            report["presence"] = {"away": away, "back": back}

            # the door calls unit 101 (open while ringing allowed): the page rings with the
            # name, the place and the door's video, no self-view, statistics folded away
            t = time.monotonic()
            call_id = await door.call("101", {"ring_timeout_s": 90, "open_while_ringing": True})
            card = await wait_until("the page rings", lambda: page.card(call_id), lambda c: not c["hidden"])
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
            report["ringing_screen"] = {
                "self_view_shown": card["selfViewShown"],
                "details_open": card["detailsOpen"],
                "stats_shown": card["statsShown"],
                "open_door_while_ringing": card["openDoorVisible"],
                "error": card["error"],
                "place": await page.js(
                    "return document.querySelector(`.call[data-call-id='${arguments[0]}'] .place`)"
                    ".textContent",
                    call_id,
                ),
            }
            report["door_audio_before_answer"] = door.received("audio")
            report["axe"]["ringing_en"] = await page.axe()
            shots["ringing_en_1280"] = await page.shot(workdir, "ringing-en-1280")
            await page.width(390, 844)
            shots["ringing_en_390"] = await page.shot(workdir, "ringing-en-390")
            report["overflow_ringing_390"] = await page.overflow()
            await page.language("zh-CN")
            report["ringing_zh_answer"] = (await page.card(call_id) or {}).get("answerText")
            shots["ringing_zh_390"] = await page.shot(workdir, "ringing-zh-390")
            await page.width(1280)
            shots["ringing_zh_1280"] = await page.shot(workdir, "ringing-zh-1280")
            report["axe"]["ringing_zh"] = await page.axe()
            await page.language("en")

            # open the door from the ringing screen: audited like the in-call action
            await page.click(f'.call[data-call-id="{call_id}"] .open-door')
            card = await wait_until(
                "open door result (ringing)",
                lambda: page.card(call_id),
                lambda c: c["action"]["result"] not in (None, "pending"),
            )
            report["open_while_ringing"] = {
                "result": card["action"]["result"],
                "state": card["state"],
                "action_id": card["action"]["action_id"],
            }

            # answer: talk, two-way audio and video, the self-view once video is sent
            card, report["talk"] = await answer_and_talk(page, door, call_id)
            report["talk"]["self_view_shown"] = card["selfViewShown"]
            timer = await wait_until("keepTime running", lambda: page.card(call_id), _talked_2_s)
            report["talk"]["timer"] = timer["timer"]
            await wait_until("door audio", lambda: door.received("audio") > 25)
            report["door_received"] = {
                "audio_frames": door.received("audio"),
                "video_frames": door.received("video"),
            }

            # loopback only: the page's candidates, Chromium's and the bridge's sockets
            report["page_candidates"] = json.loads(card["data"].get("localCandidates", "[]"))
            assert stack.media.pid is not None
            report["bridge_udp"] = sorted(tree_udp_addresses(stack.media.pid))  # node + processes
            report["chromium_udp"] = sorted(process_udp_addresses(str(workdir / "chromium-profile")))

            # open the door from the call: the device acknowledges, the page shows it
            t = time.monotonic()
            await page.click(f'.call[data-call-id="{call_id}"] .open-door')
            card = await wait_until(
                "open door result",
                lambda: page.card(call_id),
                lambda c: (
                    c["action"]["result"] not in (None, "pending")
                    and c["action"]["action_id"] != report["open_while_ringing"]["action_id"]
                ),
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
                    "return r && r.dataset.endReason && r.dataset.doorOpened === 'true'"
                    " ? {reason: r.dataset.endReason, text: r.innerText, data: {...r.dataset}} : null",
                    call_id,
                ),
            )
            view = await wait_until(
                "finishVoip in the history",
                lambda: _events_when(backend, call_id, "finishVoip"),
            )
            report["history"] = {
                "events": [e["name"] for e in view["events"]],
                "custom_actions": [e.get("data") for e in view["events"] if e["name"] == "customAction"],
                "end_reason": view.get("end_reason"),
                "page_row_end_reason": row["reason"],
                "page_row": row["text"],
                "page_row_data": row["data"],
            }

            # a call that rings the resident and the neighbour while the app's tab is in the
            # background: the ring sounds and a system notification shows; the neighbour
            # answers: the ring and the notification stop at once
            app_tab = driver.current_window_handle
            await asyncio.to_thread(driver.switch_to.new_window, "tab")
            await asyncio.to_thread(driver.get, f"{stack.api_url}/healthz")
            beeps_before = None
            background_id = await door.call_to(both, together)
            notes = await wait_until(
                "the notification of the call (background tab)",
                lambda: page.js(NOTIFICATIONS_JS),
                lambda ns: any(n["tag"] == background_id for n in ns),
            )
            await wait_until("the neighbour rung too", lambda: neighbour.rung(background_id))
            await asyncio.sleep(2.5)  # the ring sounds a while in the background
            await neighbour.answer_and_talk(background_id)
            t = time.monotonic()
            await wait_until(
                "the notification closed once the neighbour answered",
                lambda: page.js(NOTIFICATIONS_JS),
                lambda ns: not any(n["tag"] == background_id for n in ns),
            )
            closed_after_s = round(time.monotonic() - t, 2)
            await asyncio.to_thread(driver.close)
            await asyncio.to_thread(driver.switch_to.window, app_tab)
            bg = await wait_until(
                "the ring stopped on the page",
                lambda: page.card(background_id),
                lambda c: c["state"] == "ended" and c["data"].get("answeredElsewhere") == "true",
            )
            beeps_before = int(await page.js("return Number(document.body.dataset.ringBeeps || 0)"))
            await asyncio.sleep(2.5)
            report["background"] = {
                "notification": next(n for n in notes if n["tag"] == background_id),
                "notified": bg["data"].get("notified"),
                "closed_after_answer_s": closed_after_s,
                "card_status": bg["status"],
                "ring_beeps": beeps_before,
                "ring_beeps_later": int(await page.js("return Number(document.body.dataset.ringBeeps || 0)")),
                "audio": await page.js("return document.body.dataset.sound"),
            }
            await neighbour.hang_up(background_id)
            await wait_until("ended (background)", lambda: _phase_is(backend, background_id, "ended"))

            # the call log: names, answered by whom, door opened, missed highlighted, talk
            # time; no sideways scroll at 390 and 360 px; both languages
            await page.click("#history-refresh")
            await wait_until(
                "the log complete",
                lambda: page.js(
                    "const e = document.querySelector(`#history .entry[data-call-id='${arguments[0]}']`);"
                    "return e && e.dataset.answeredBy ? true : null",
                    background_id,
                ),
            )
            report["snapshots"] = await wait_until(
                "the visitor snapshots in the log",
                lambda: page.js(
                    """
                    const out = {};
                    for (const e of document.querySelectorAll("#history .entry")) {
                      const img = e.querySelector(".snap img");
                      out[e.dataset.callId] = img && img.complete ? img.naturalWidth : 0;
                    }
                    return out;
                    """
                ),
                lambda m: m.get(call_id, 0) > 0 and m.get(background_id, 0) > 0,
            )
            await asyncio.sleep(1.0)
            await page.js("document.querySelector('#history-section').scrollIntoView()")
            shots["history_en_1280"] = await page.shot(workdir, "history-en-1280")
            report["axe"]["history_en"] = await page.axe()
            report["overflow"] = {}
            for px in (390, 360):
                await page.width(px, 844)
                report["overflow"][str(px)] = await page.overflow()
            await page.width(390, 844)
            await page.js("document.querySelector('#history-section').scrollIntoView()")
            shots["history_en_390"] = await page.shot(workdir, "history-en-390")
            await page.language("zh-CN")
            await page.js("document.querySelector('#history-section').scrollIntoView()")
            shots["history_zh_390"] = await page.shot(workdir, "history-zh-390")
            report["overflow"]["390_zh"] = await page.overflow()
            report["history_zh"] = await page.js(
                "return {lang: document.documentElement.lang,"
                " title: document.querySelector('#history-title').innerText,"
                " first: document.querySelector('#history .entry').innerText}"
            )
            await page.width(1280)
            await page.js("document.querySelector('#history-section').scrollIntoView()")
            shots["history_zh_1280"] = await page.shot(workdir, "history-zh-1280")
            report["axe"]["history_zh"] = await page.axe()
            await page.language("en")

            # the history entry opens the call's detail: its timeline picture (issue 12 item 7)
            await page.click(f'#history .entry[data-call-id="{call_id}"] .open')
            report["detail"] = await wait_until(
                "the call's timeline in the detail",
                lambda: page.js(
                    """
                    const d = document.querySelector("#call-detail");
                    if (d.hidden || d.dataset.state !== "shown") return null;
                    const svg = d.querySelector(".timeline svg");
                    const lanes = [...svg.querySelectorAll("g.lane")];
                    return {
                      call_id: d.dataset.callId,
                      svg_width: svg.getBoundingClientRect().width,
                      lanes: lanes.map((g) => g.querySelector(".lane-label").textContent),
                      phases: lanes.map((g) => [...g.querySelectorAll("rect[data-phase]")].map(
                        (r) => r.dataset.phase)),
                      events: lanes.map((g) => [...g.querySelectorAll("g.event")].map(
                        (m) => m.dataset.event)),
                    };
                    """
                ),
            )
            report["detail"]["clicked"] = call_id
            await asyncio.to_thread(driver.save_screenshot, str(workdir / "detail.png"))

            # issue 10: "Pass" on a unit's call (alice passes, bob is rung at once), then the
            # missed call's follow-up in the log: "Open door" inside the window
            follow = {"ring_timeout_s": 5, "follow_up_window_s": 600, "remote_open_after_miss": True}
            passed_id = await door.call("101", follow)
            report["pass"] = {
                "card": await wait_until(
                    "the Pass button on the ringing card",
                    lambda: page.js(
                        "const c = document.querySelector(`.call[data-call-id='${arguments[0]}']`);"
                        "return c && c.dataset.state === 'ringing' && !c.querySelector('.pass').hidden"
                        " ? {pass: c.querySelector('.pass').textContent, decline: c.querySelector('.reject')"
                        ".textContent} : null",
                        passed_id,
                    ),
                )
            }
            await page.click(f'.call[data-call-id="{passed_id}"] .pass')
            await wait_until("the neighbour rung after the pass", lambda: neighbour.rung(passed_id))
            await wait_until("ended (missed after the pass)", lambda: _phase_is(backend, passed_id, "ended"))
            missed_view = (await backend.http.get(f"/v1/calls/{passed_id}")).raise_for_status().json()
            report["pass"]["events"] = [e["name"] for e in missed_view["events"]]
            report["pass"]["outcomes"] = [a["outcome"] for a in missed_view["attempts"]]
            await page.click("#history-refresh")
            entry = f'#history .entry[data-call-id="{passed_id}"]'
            report["follow_up"] = await wait_until(
                "the follow-up buttons in the log",
                lambda: page.js(
                    "const e = document.querySelector(arguments[0]);"
                    "return e && e.dataset.followUp === 'true' ? {missed: e.dataset.missed,"
                    " call_back: e.querySelector('.call-back').textContent,"
                    " open: e.querySelector('.open-door-after').textContent} : null",
                    entry,
                ),
            )
            await page.click(f"{entry} .open-door-after")
            report["follow_up"]["result"] = await wait_until(
                "the door opened after the miss",
                lambda: page.js(
                    "const r = document.querySelector(arguments[0] + ' .follow-up-result');"
                    "return r.dataset.result ? {result: r.dataset.result, text: r.textContent} : null",
                    entry,
                ),
            )
            report["follow_up"]["door_actions"] = [a.get("after_miss") for a in door.actions]
            report["axe"]["follow_up"] = await page.axe()
            report["shown_calls"] = await page.js("return window.__shownCalls")
            console = await asyncio.to_thread(driver.get_log, "browser")
            report["console_errors"] = [e["message"] for e in console if e.get("level") == "SEVERE"]
        finally:
            if driver is not None:
                with contextlib.suppress(Exception):  # what the page showed last, for a person
                    await asyncio.to_thread(driver.save_screenshot, str(workdir / "page.png"))
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(driver.quit)
            await door.close()
            await neighbour.close()
            await backend.aclose()
    return report


async def _rung(backend: Any, call_id: str, user_id: str) -> bool:
    view: dict[str, Any] = await backend.call(call_id)
    return any(a["listener"]["id"] == user_id and a["phase"] == "wait" for a in view.get("attempts", []))


async def _phase_is(backend: Any, call_id: str, phase: str) -> bool:
    view: dict[str, Any] = await backend.call(call_id)
    return bool(view.get("phase") == phase)


async def answer_and_talk(page: Any, door: Any, call_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Click Answer on ``call_id``'s card in ``page`` (Chromium's or Firefox's), wait for talk
    with "Open door", then for audio and video to flow both ways (the page's counters, the
    door's received video). Returns the card and the talk figures for the report."""
    t = time.monotonic()
    await page.click(f'.call[data-call-id="{call_id}"] .answer')
    card = await wait_until("talk with Open door", lambda: page.card(call_id), _open_door_shown)
    base_audio = int(card["data"].get("audioPackets", "0"))
    base_video = int(card["data"].get("videoFrames", "0"))
    card = await wait_until(
        "audio and video after the answer",
        lambda: page.card(call_id),
        lambda c: (
            int(c["data"].get("audioPackets", "0")) > base_audio + 25
            and int(c["data"].get("videoFrames", "0")) > base_video + 10
        ),
    )
    await wait_until("the door hears and sees the resident", lambda: door.received("video") > 5)
    talk = {
        "media_after_answer_s": round(time.monotonic() - t, 2),
        "audio_packets": int(card["data"]["audioPackets"]),
        "audio_bytes": int(card["data"]["audioBytes"]),
        "video_frames": int(card["data"]["videoFrames"]),
        "video_bytes": int(card["data"]["videoBytes"]),
        "pair": card["data"].get("pair"),
    }
    return card, talk


def _playing(card: dict[str, Any]) -> bool:
    v = card["video"]
    return bool(v["width"] > 0 and v["time"] > 0 and not v["paused"])


def _open_door_shown(card: dict[str, Any]) -> bool:
    return bool(card["state"] == "talk" and card["openDoorVisible"])


def _talked_2_s(card: dict[str, Any]) -> bool:
    minutes, _, seconds = card["timer"].partition(":")
    return minutes.isdigit() and seconds.isdigit() and int(minutes) * 60 + int(seconds) >= 2


async def _events_when(backend: Any, call_id: str, name: str) -> dict[str, Any] | None:
    view: dict[str, Any] = await backend.call(call_id)
    return view if any(e["name"] == name for e in view["events"]) else None


def main(argv: list[str]) -> int:
    """``python -m tests.test_browser WORKDIR``: run the scenario, write ``WORKDIR/report.json``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    workdir = Path(argv[1]).resolve()

    async def run() -> dict[str, Any]:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            return await scenario(workdir)

    report = asyncio.run(run())
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

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
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILDING = ROOT / "examples" / "building.yaml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

SCENARIO_TIMEOUT_S = 240.0
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
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install Debian's chromium and chromium-driver "
            "(`apt-get install chromium chromium-driver`; `./run test` does it as root)"
        )
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("`unshare` (util-linux) is missing: the browser test runs in its own network namespace")
    cmd = [unshare, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    cmd += ["--", sys.executable, "-m", "tests.test_browser", str(tmp_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_path = tmp_path / "scenario.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=SCENARIO_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
    if rc is None:
        pytest.fail(f"the browser scenario did not finish in {SCENARIO_TIMEOUT_S + 30:.0f} s:\n{tail}")
    if rc != 0 and "unshare" in tail and "Operation not permitted" in tail:
        pytest.fail(f"cannot create a network namespace (root or user namespaces needed):\n{tail}")
    assert rc == 0, f"the browser scenario failed (exit {rc}), log {log_path}:\n{tail}"

    report = json.loads((tmp_path / "report.json").read_text())
    print(json.dumps(report, indent=1))  # the figures, shown with pytest -s
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
    assert [e for e in events if e in EXPECTED_EVENTS] == EXPECTED_EVENTS, events
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
            ("app.css", "text/css"),
            ("icon.svg", "image/svg+xml"),
        ]:
            r = http.get(f"/app/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), (name, r.headers)
            assert f'src="app/{name}"' in page.text or f'href="app/{name}"' in page.text
            again = http.get(f"/app/{name}", headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # CSP: no inline code
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

    async def call(self, unit_id: str) -> str:
        """Place a video call to ``unit_id`` with the device token and join its media room
        as the caller (complete ICE); returns the call id."""
        from aiortc import VideoStreamTrack

        from media.peer import ClientPeer, ToneTrack

        assert self.http is not None
        r = await self.http.post(
            "/v1/calls",
            json={"caller": {"kind": "device", "id": "LOBBY-1"}, "unit_id": unit_id, "room_type": "video"},
            headers={"Idempotency-Key": f"browser-{uuid.uuid4().hex[:12]}"},
        )
        assert r.status_code in (200, 201, 202), r.text
        call_id = str(r.json()["call_id"])
        self.peer = ClientPeer([ToneTrack(440), VideoStreamTrack()])
        offer = await self.peer.offer()
        r = await self.http.post(f"/v1/calls/{call_id}/media", json={"sdp": offer, "type": "offer"})
        assert r.status_code == 200, r.text
        await self.peer.accept(r.json()["sdp"])
        return call_id

    def received(self, kind: str) -> int:
        """Frames the door received on ``kind`` tracks."""
        return sum(r.frames for r in self.peer.received if r.kind == kind) if self.peer else 0

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        if self.push is not None:
            await self.push.close()
        if self.http is not None:
            await self.http.aclose()


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
              },
              openDoorVisible: !q(".open-door").hidden,
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
    from media.network import MediaNetwork, udp_addresses
    from ringflow.client import Backend
    from ringflow.contracts.common import Party, PartyKind
    from ringflow.directory_load import load_building, read_building
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from store.db import create_pool

    report: dict[str, Any] = {"interfaces": loopback_up()}
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
        door = Door(stack.api_url, await backend.token(Party(kind=PartyKind.DEVICE, id="LOBBY-1")))
        resident_token = await backend.token(resident)
        driver = None
        try:
            await door.start()
            driver = await asyncio.to_thread(start_chromium, workdir)
            page = Page(driver)
            t = time.monotonic()
            await asyncio.to_thread(driver.get, f"{stack.api_url}/app?token={resident_token}")
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
            card = await wait_until("the page rings", lambda: page.card(call_id))
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
            report["door_audio_before_answer"] = door.received("audio")

            # answer: talk, two-way audio and video
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
            report["talk"] = {
                "media_after_answer_s": round(time.monotonic() - t, 2),
                "audio_packets": int(card["data"]["audioPackets"]),
                "audio_bytes": int(card["data"]["audioBytes"]),
                "video_frames": int(card["data"]["videoFrames"]),
                "video_bytes": int(card["data"]["videoBytes"]),
                "pair": card["data"].get("pair"),
            }
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
            report["bridge_udp"] = sorted(udp_addresses(stack.media.pid))
            report["chromium_udp"] = sorted(process_udp_addresses(str(workdir / "chromium-profile")))

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
                    'const r = document.querySelector(`#history tr[data-call-id="${arguments[0]}"]`);'
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

            # the history row opens the call's detail: its timeline picture (issue 12 item 7)
            await page.click(f'#history tr[data-call-id="{call_id}"]')
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
            console = await asyncio.to_thread(driver.get_log, "browser")
            report["console_errors"] = [e["message"] for e in console if e.get("level") == "SEVERE"]
        finally:
            if driver is not None:
                with contextlib.suppress(Exception):  # what the page showed last, for a person
                    await asyncio.to_thread(driver.save_screenshot, str(workdir / "page.png"))
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(driver.quit)
            await door.close()
            await backend.aclose()
    return report


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

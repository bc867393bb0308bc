"""Headless Firefox ESR driven over WebDriver BiDi, for tests/test_browser_firefox.py.

No geckodriver: Debian 12 has no package of it, PyPI's ``geckodriver-wrapper`` holds a
Windows ``geckodriver.exe`` only, and npm's ``geckodriver`` downloads the binary from
GitHub in its install script. Firefox itself speaks WebDriver BiDi (the W3C protocol,
Firefox's own remote agent): started with ``--remote-debugging-port``, it listens on
``ws://127.0.0.1:PORT/session``, and this module is a small client of it on the
``websockets`` package ringflow already depends on: navigate, run a function in the page,
click with real (trusted) pointer input, screenshot, console entries.

Firefox runs with a throwaway profile whose ``user.js`` (:data:`FIREFOX_PREFS`) lets WebRTC
use loopback host candidates with their real addresses, gives fake camera and microphone
without a permission prompt, lets media autoplay, and turns off background services
(updates, telemetry, safe browsing, captive-portal checks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import websockets

FIREFOX = Path("/usr/bin/firefox-esr")

FIREFOX_PREFS: dict[str, bool | int | str] = {
    # WebRTC on loopback: Firefox leaves 127.0.0.1/::1 out of ICE gathering unless told,
    # and would hide host addresses behind mDNS names (which the bridge drops).
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Firefox gathers on the default route's address only ("use only default local
    # addresses", PeerConnectionImpl::GetPrefDefaultAddressOnly) unless the page holds a
    # camera or microphone permission; media.navigator.permission.disabled skips the
    # prompt but grants no permission, and in a namespace with no route there is no
    # default address: no candidate at all, "ICE failed". Allowing both by default is a
    # granted permission for every origin, so every interface (here: lo) is gathered.
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    # camera and microphone: Firefox's generated frames and tone, no permission prompt
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # the door's video (and audio) may play without a click
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # nothing in the background (it could not get out of the namespace anyway)
    "app.update.enabled": False,
    "app.update.auto": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.search.update": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "services.settings.server": "",
    "browser.ping-centre.telemetry": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "app.normandy.enabled": False,
}


PRIVACY_PREFS = (
    "media.peerconnection.ice.loopback",
    "media.peerconnection.ice.obfuscate_host_addresses",
    "permissions.default.camera",
    "permissions.default.microphone",
)

FIREFOX_DEFAULT_PRIVACY: dict[str, bool | int | str] = {
    k: v for k, v in FIREFOX_PREFS.items() if k not in PRIVACY_PREFS
}
""":data:`FIREFOX_PREFS` less the four above: Firefox as a resident has it, gathering on the
default route's address only and hiding it behind an mDNS ``.local`` name (the fake media
and the skipped prompt grant no permission)."""


class BiDiError(RuntimeError):
    """An error answer of the remote end: ``error`` and ``message`` of the BiDi spec."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_profile(profile: Path, prefs: dict[str, bool | int | str] | None = None) -> None:
    """A fresh Firefox profile directory holding ``user.js`` with ``prefs``."""
    profile.mkdir(parents=True, exist_ok=True)
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in (prefs or FIREFOX_PREFS).items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


class Firefox:
    """One headless Firefox process and its BiDi session on the first tab.

    ``start`` launches it and connects; ``quit`` ends the session and the process group.
    ``console`` collects the page's console entries (``log.entryAdded``)."""

    def __init__(
        self,
        workdir: Path,
        prefs: dict[str, bool | int | str] | None = None,
        binary: Path = FIREFOX,
        width: int = 1024,
        height: int = 900,
    ) -> None:
        self.workdir = workdir
        self.prefs = FIREFOX_PREFS if prefs is None else prefs
        self.binary = binary
        self.profile = workdir / "firefox-profile"
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.context = ""
        self.name = self.version = ""
        self.console: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Launch Firefox, connect to its BiDi endpoint (within ``timeout`` seconds), open
        a session on its first tab and subscribe to its console."""
        port = free_port()
        self.proc = self._launch(port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/session", max_size=64 * 1024 * 1024, open_timeout=5
                )
                break
            except (TimeoutError, OSError, websockets.InvalidHandshake):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Firefox's WebDriver BiDi did not come up on port {port} "
                        f"(exit {self.proc.poll()}), see {self.workdir / 'firefox.log'}"
                    ) from None
                await asyncio.sleep(0.2)
        self._reader = asyncio.create_task(self._read())
        session = await self.send("session.new", {"capabilities": {"alwaysMatch": {}}})
        self.name = str(session["capabilities"].get("browserName", ""))
        self.version = str(session["capabilities"].get("browserVersion", ""))
        tree = await self.send("browsingContext.getTree", {"maxDepth": 0})
        self.context = tree["contexts"][0]["context"]
        await self.send("session.subscribe", {"events": ["log.entryAdded"]})

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        """Start headless Firefox on a fresh profile with BiDi on ``port``; its output goes
        to ``firefox.log`` in the workdir."""
        write_profile(self.profile, self.prefs)
        home = self.workdir / "firefox-home"
        home.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "HOME": str(home),
            "MOZ_HEADLESS": "1",
            "MOZ_CRASHREPORTER_DISABLE": "1",
            "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
        }
        log = (self.workdir / "firefox.log").open("wb")
        proc = subprocess.Popen(
            [
                str(self.binary),
                "--headless",
                "--no-remote",
                "--profile",
                str(self.profile),
                "--remote-debugging-port",
                str(port),
                "--width",
                str(self.size[0]),
                "--height",
                str(self.size[1]),
                "about:blank",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return proc

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg.get("type") == "event":
                    if msg.get("method") == "log.entryAdded":
                        self.console.append(msg["params"])
                    continue
                fut = self._pending.pop(msg.get("id", -1), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        finally:  # Firefox went away: nothing more will be answered
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(BiDiError("the BiDi connection closed"))
            self._pending.clear()

    async def send(self, method: str, params: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """One BiDi command; returns its ``result`` or raises :class:`BiDiError`."""
        cmd_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        await self.ws.send(json.dumps({"id": cmd_id, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, timeout)
        if msg.get("type") == "error":
            raise BiDiError(f"{method}: {msg.get('error')}: {msg.get('message')}")
        result: dict[str, Any] = msg["result"]
        return result

    async def get(self, url: str) -> None:
        await self.send("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    async def js(self, body: str, *args: Any) -> Any:
        """Run ``body`` as a function body in the page (``arguments[i]`` are ``args``, JSON
        values); returns its (awaited) result through JSON."""
        wrapper = (
            "async function(...a) { const r = await (async function() {"
            + body
            + "}).apply(this, a.map((x) => JSON.parse(x)));"
            + " return JSON.stringify(r === undefined ? null : r); }"
        )
        result = await self.send(
            "script.callFunction",
            {
                "functionDeclaration": wrapper,
                "arguments": [{"type": "string", "value": json.dumps(a)} for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "userActivation": False,
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BiDiError(f"script: {details.get('text')}")
        return json.loads(result["result"]["value"])

    async def click(self, css: str) -> None:
        """A real click on the first element matching ``css`` (trusted pointer input at
        the element's centre: a user gesture, as a person's)."""
        found = await self.send(
            "browsingContext.locateNodes",
            {"context": self.context, "locator": {"type": "css", "value": css}, "maxNodeCount": 1},
        )
        if not found["nodes"]:
            raise BiDiError(f"no element matches {css!r}")
        node = {"sharedId": found["nodes"][0]["sharedId"]}
        await self.send(
            "script.callFunction",
            {
                "functionDeclaration": "function(el) { el.scrollIntoView({block: 'center'}); }",
                "arguments": [node],
                "target": {"context": self.context},
                "awaitPromise": False,
            },
        )
        await self.send(
            "input.performActions",
            {
                "context": self.context,
                "actions": [
                    {
                        "type": "pointer",
                        "id": "mouse",
                        "parameters": {"pointerType": "mouse"},
                        "actions": [
                            {
                                "type": "pointerMove",
                                "x": 0,
                                "y": 0,
                                "origin": {"type": "element", "element": node},
                            },
                            {"type": "pointerDown", "button": 0},
                            {"type": "pointerUp", "button": 0},
                        ],
                    }
                ],
            },
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("browsingContext.captureScreenshot", {"context": self.context})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    def console_errors(self) -> list[str]:
        return [str(e.get("text")) for e in self.console if e.get("level") == "error"]

    def pids(self) -> set[int]:
        """Firefox's main process and every process under it (content, socket, GPU...)."""
        if self.proc is None:
            return set()
        children: dict[int, list[int]] = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        found, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        return found

    async def quit(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("browser.close", {}), 10)
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self.proc is not None:
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self.proc.wait)

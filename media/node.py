"""A media bridge **node**: one media process per core behind one control API (issue 13 items
2-4; ``docs/media.md`` "Scale").

``python -m media.server`` runs a node: it starts ``media_processes`` (0: one per core) media
processes, each a whole :class:`media.bridge.Bridge` with its own control API on a loopback
port (``python -m media.server --process``, ``media/server.py``), and serves the node's
control API on ``media_host``:``media_port`` with the same routes, which it forwards to the
process that holds each room:

- a room's first ``POST /rooms/{id}/peers`` or ``PUT /rooms/{id}/talker`` places it on the
  least loaded ready process (fewest rooms, then CPU); later requests follow it;
- ``GET /rooms/{id}/stats``, ``GET /rooms/{id}/snapshot`` and ``DELETE /rooms/{id}`` of a
  room the node does not hold (closed, or held before a restart) ask every process; the
  first answer that is not 404 wins;
- ``GET /rooms`` is every process's rooms; ``GET /metrics`` every process's series with a
  ``process`` label; ``GET /node`` (API key) the node's processes and load (:class:`NodeInfo`).

Supervision: a media process that exits (crash, kill -9) is seen at once (its ``wait()``
returns); its rooms are forgotten, each room's building call gets the signal
``media_bridge_lost`` (``BridgeLostInput``, node ``"<node id>/<index>"``) so that the call
re-offers its parties (``workflows/media_failover.py``), and the process is started again
on its port (after ``RESTART_DELAY_S`` while another process is ready, which takes the
rooms). The next request for such a room places it on a ready process.

Registry (``media_register``): the node registers itself in PostgreSQL (``store/media_nodes.py``)
with its control URL, announced media address, capacity (``media_process_capacity`` x
processes) and load (rooms, peers, CPU percent of one core summed over its processes), every
``media_node_heartbeat_s``; why a node and not each process: a node is what other services
reach (one URL), and it already places rooms on its processes faster than a database could.
Durations are seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from pydantic import Field

from api import problems
from api.deps import BackendAuth
from api.problems import Problem
from api.routers.health import readiness, run_checks
from media.signals import signal_bridge_lost
from ringflow.contracts.common import Contract
from ringflow.contracts.media import BridgeLostInput
from ringflow.settings import Settings
from ringflow.stack.ports import free_port
from ringflow.stack.processes import _parent_death_signal
from ringflow.temporal import connect
from store import media_nodes
from store.db import create_pool

log = logging.getLogger(__name__)

PLACED_GRACE_S = 5.0
"""A room placed this recently counts on its process even before the process lists it."""
RESTART_DELAY_S = 3.0
"""How long a dead process waits before it starts again while other processes are ready."""
READY_TIMEOUT_S = 60.0
"""How long a media process may take to answer ``/healthz`` after its start, seconds."""


class ProcessInfo(Contract):
    """One media process of a node (``GET /node``)."""

    index: int
    port: int
    pid: int | None
    ready: bool
    rooms: int
    peers: int
    cpu_percent: float
    restarts: int


class NodeInfo(Contract):
    """``GET /node``: the node's id, control URL, announced media address and processes."""

    node_id: str
    control_url: str
    media_address: str | None
    capacity: int
    processes: list[ProcessInfo] = Field(default_factory=list)


@dataclass(eq=False)
class MediaProcess:
    """One media process: its loopback control port, its OS process, the rooms placed on it
    (``call_id`` -> monotonic time of placement) and what its last sync saw."""

    index: int
    port: int
    http: httpx.AsyncClient
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    rooms: dict[str, float] = field(default_factory=dict)
    peers: int = 0
    cpu_percent: float = 0.0
    _ps: psutil.Process | None = None

    def cpu(self) -> float:
        """CPU percent of one core since the previous call (0 at the first)."""
        if self.proc is None:
            return 0.0
        try:
            if self._ps is None or self._ps.pid != self.proc.pid:
                self._ps = psutil.Process(self.proc.pid)
                self._ps.cpu_percent(None)
                return 0.0
            return float(self._ps.cpu_percent(None))
        except psutil.Error:
            return 0.0


def resolve_own_address() -> str:
    """This host's address as its neighbours see it (a container's address on its network):
    the address its hostname resolves to, else the source address of a route to a public
    address (no packet is sent)."""
    with suppress(OSError):
        addr = socket.gethostbyname(socket.gethostname())
        if not addr.startswith("127."):
            return addr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
        return str(s.getsockname()[0])


class MediaNode:
    """The node's processes and its placement of rooms on them (see the module docstring).
    ``processes``: how many (0: one per core)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        n = settings.media_processes or os.cpu_count() or 1
        self.node_id = settings.media_node_id or f"{socket.gethostname()}:{settings.media_port}"
        if settings.media_node_url == "auto":
            self.control_url = f"http://{resolve_own_address()}:{settings.media_port}"
        else:
            self.control_url = settings.media_node_url or settings.media_url
        announced = settings.media_announced_ip
        self.media_address = resolve_own_address() if announced == "auto" else announced
        if self.media_address is None and settings.media_listen_ips:
            self.media_address = settings.media_listen_ips[0]
        self.capacity = settings.media_process_capacity * n
        self.processes = [
            MediaProcess(
                i,
                port,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"X-API-Key": settings.api_key},
                    timeout=settings.media_request_timeout_s,
                ),
            )
            for i, port in enumerate(free_port() for _ in range(n))
        ]
        self.placement: dict[str, MediaProcess] = {}
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._temporal: Any = None
        self._pool: Any = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every process and wait until each answers; start the supervision (and the
        registry heartbeat with ``media_register``). Raises ``RuntimeError`` when a process
        does not come up in ``READY_TIMEOUT_S``."""
        self._temporal = await connect(self.settings)
        await asyncio.gather(*(self._spawn(p) for p in self.processes))
        for p in self.processes:
            self._tasks.append(asyncio.create_task(self._supervise(p)))
        if self.settings.media_register:
            self._pool = await create_pool(self.settings.database_url, 1, 2)
        self._tasks.append(asyncio.create_task(self._sync_loop()))

    async def stop(self) -> None:
        """SIGTERM every process (each closes its rooms), wait, deregister."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for p in self.processes:
            if p.proc is not None and p.proc.returncode is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.processes:
            if p.proc is not None:
                try:
                    await asyncio.wait_for(p.proc.wait(), 15)
                except TimeoutError:
                    p.proc.kill()
                    await p.proc.wait()
            await p.http.aclose()
        if self._pool is not None:
            with suppress(Exception):
                await media_nodes.deregister(self._pool, self.node_id)
            await self._pool.close()

    async def _spawn(self, p: MediaProcess) -> None:
        env = dict(os.environ)
        env.update(
            RINGFLOW_MEDIA_HOST="127.0.0.1",
            RINGFLOW_MEDIA_PORT=str(p.port),
            RINGFLOW_MEDIA_URL=f"http://127.0.0.1:{p.port}",
        )
        if self.media_address is not None and self.settings.media_announced_ip == "auto":
            env["RINGFLOW_MEDIA_ANNOUNCED_IP"] = self.media_address
        p.ready = False
        p.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "media.server",
            "--process",
            env=env,
            preexec_fn=_parent_death_signal(signal.SIGKILL),
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while p.proc.returncode is None:
            with suppress(httpx.HTTPError):
                if (await p.http.get("/healthz")).status_code == 200:
                    p.ready = True
                    log.info("media process %d ready (pid %s, port %d)", p.index, p.proc.pid, p.port)
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"media process {p.index} not ready in {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.1)

    async def _supervise(self, p: MediaProcess) -> None:
        """Forever: when ``p`` exits, tell its rooms' calls and start it again."""
        while not self.stopping:
            assert p.proc is not None
            code = await p.proc.wait()
            if self.stopping:
                return
            p.ready = False
            lost = [call_id for call_id, q in self.placement.items() if q is p]
            for call_id in lost:
                del self.placement[call_id]
            p.rooms.clear()
            log.warning(
                "media process %d exited with %s; %d rooms lost, restarting", p.index, code, len(lost)
            )
            error = f"media process {p.index} of {self.node_id} exited with {code}"
            await asyncio.gather(
                *(
                    signal_bridge_lost(
                        self._temporal,
                        call_id,
                        BridgeLostInput(room_id=call_id, node=f"{self.node_id}/{p.index}", error=error),
                    )
                    for call_id in lost
                )
            )
            p.restarts += 1
            if any(q.ready for q in self.processes):
                # the other processes take the lost rooms first: a starting process costs a
                # core for a second or two (imports), which the re-offers need now
                await asyncio.sleep(RESTART_DELAY_S)
            try:
                await self._spawn(p)
            except (RuntimeError, OSError):
                log.exception("media process %d did not come back; trying again", p.index)
                await asyncio.sleep(1.0)

    async def _sync_loop(self) -> None:
        """Every heartbeat: each ready process's rooms and peers (``GET /rooms``) and CPU; the
        registry row with ``media_register``. Errors are logged and retried at the next beat."""
        while True:
            try:
                await self.sync()
                if self._pool is not None:
                    await media_nodes.heartbeat(self._pool, self.load())
            except Exception:
                log.exception("node heartbeat failed")
            await asyncio.sleep(self.settings.media_node_heartbeat_s)

    async def sync(self) -> None:
        """Refresh each process's rooms, peers and CPU from the process itself; rooms a
        process closed by itself are forgotten (a placement younger than ``PLACED_GRACE_S``
        is kept: its first request may still be on the way)."""
        now = time.monotonic()
        for p in self.processes:
            p.cpu_percent = p.cpu()
            if not p.ready:
                continue
            try:
                r = await p.http.get("/rooms")
                r.raise_for_status()
            except httpx.HTTPError:
                continue
            listed = r.json()
            live = {room["call_id"] for room in listed}
            p.peers = sum(len(room["peers"]) for room in listed)
            for call_id, at in list(p.rooms.items()):
                if call_id not in live and now - at > PLACED_GRACE_S:
                    del p.rooms[call_id]
                    if self.placement.get(call_id) is p:
                        del self.placement[call_id]
            for call_id in live:
                p.rooms.setdefault(call_id, now)
                self.placement.setdefault(call_id, p)

    def load(self) -> media_nodes.NodeLoad:
        """The node's load for the registry."""
        return media_nodes.NodeLoad(
            node_id=self.node_id,
            control_url=self.control_url,
            media_address=self.media_address,
            capacity=self.capacity,
            processes=len(self.processes),
            rooms=sum(len(p.rooms) for p in self.processes),
            peers=sum(p.peers for p in self.processes),
            cpu_percent=round(sum(p.cpu_percent for p in self.processes), 1),
        )

    def info(self) -> NodeInfo:
        """``GET /node``."""
        return NodeInfo(
            node_id=self.node_id,
            control_url=self.control_url,
            media_address=self.media_address,
            capacity=self.capacity,
            processes=[
                ProcessInfo(
                    index=p.index,
                    port=p.port,
                    pid=p.proc.pid if p.proc is not None and p.proc.returncode is None else None,
                    ready=p.ready,
                    rooms=len(p.rooms),
                    peers=p.peers,
                    cpu_percent=p.cpu_percent,
                    restarts=p.restarts,
                )
                for p in self.processes
            ],
        )

    # ------------------------------------------------------------------ placement

    def holder(self, call_id: str) -> MediaProcess | None:
        """The ready process holding room ``call_id``, if any."""
        p = self.placement.get(call_id)
        return p if p is not None and p.ready else None

    def place(self, call_id: str) -> MediaProcess:
        """The process of room ``call_id``: its holder, else the least loaded ready process
        (fewest rooms, then CPU, then index), recorded. Raises 503 ``media-unavailable``
        when no process is ready."""
        p = self.holder(call_id)
        if p is not None:
            return p
        ready = [q for q in self.processes if q.ready]
        if not ready:
            raise _media_unavailable("no media process is ready")
        p = min(ready, key=lambda q: (len(q.rooms), q.cpu_percent, q.index))
        self.placement[call_id] = p
        p.rooms[call_id] = time.monotonic()
        log.info("room %s placed on media process %d", call_id, p.index)
        return p


# ---------------------------------------------------------------------- control API


def _relay(r: httpx.Response) -> Response:
    """A process's answer, passed on as it is (status, body, content type, cache headers)."""
    headers = {k: v for k, v in r.headers.items() if k.lower() == "cache-control"}
    return Response(r.content, r.status_code, headers=headers, media_type=r.headers.get("content-type"))


def _media_unavailable(detail: str) -> Problem:
    return Problem(503, "media-unavailable", "The media is unavailable", detail)


class _Merged(Collector):
    """Every process's metric families with a ``process`` label (``GET /metrics``)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def merge_metrics(expositions: dict[int, str]) -> bytes:
    """One Prometheus text exposition of the processes' ``expositions`` (by index), each
    series labelled ``process="<index>"``."""
    merged: dict[str, Metric] = {}
    for index, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for s in family.samples:
                into.add_sample(s.name, {**s.labels, "process": str(index)}, s.value, s.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(merged.values()))
    return generate_latest(registry)


def create_node_app(settings: Settings) -> FastAPI:
    """The node's control API (``app.state.node``): the media processes start with the app's
    lifespan and stop with it (routes in the module docstring, errors problem+json)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node = app.state.node = MediaNode(settings)
        try:
            await node.start()
            yield
        finally:
            await node.stop()

    app = FastAPI(title="ringflow media node", version="0.3.0", lifespan=lifespan)
    app.state.settings = settings
    problems.install(app)

    def node() -> MediaNode:
        n: MediaNode = app.state.node
        return n

    async def send(p: MediaProcess, request: Request, path: str) -> httpx.Response:
        try:
            return await p.http.request(
                request.method,
                path,
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        except httpx.HTTPError as e:
            raise _media_unavailable(f"media process {p.index}: {e!r}") from e

    async def to_holder(call_id: str, request: Request, path: str) -> Response:
        """Create-or-follow routes: the room's process (placed now if new)."""
        return _relay(await send(node().place(call_id), request, path))

    async def to_any(call_id: str, request: Request, path: str) -> Response:
        """Read/close routes: the holder, else every ready process (first non-404)."""
        n = node()
        holder = n.holder(call_id)
        candidates = [holder] if holder is not None else [p for p in n.processes if p.ready]
        last: httpx.Response | None = None
        for p in candidates:
            last = await send(p, request, path)
            if last.status_code != 404:
                break
        if last is None:
            raise _media_unavailable("no media process is ready")
        if request.method == "DELETE" and last.is_success:
            gone = n.placement.pop(call_id, None)
            if gone is not None:
                gone.rooms.pop(call_id, None)
        return _relay(last)

    def route(forward: Any, suffix: str) -> Any:
        async def endpoint(call_id: str, request: Request) -> Response:
            return await forward(call_id, request, f"/rooms/{call_id}{suffix}")

        return endpoint

    # (method, path after /rooms/{call_id}, how, what): the bridge's own routes (media/server.py)
    for method, suffix, forward, what in (
        ("POST", "/peers", to_holder, "A party's offer, on the room's process (placed now if new)."),
        ("PUT", "/talker", to_holder, "The room's talker, on the room's process (placed now if new)."),
        ("GET", "/stats", to_any, "The room's traffic, from whichever process has it."),
        ("GET", "/snapshot", to_any, "The visitor snapshot, from whichever process has it."),
        ("DELETE", "", to_any, "Close the room wherever it is; its final stats."),
    ):
        app.add_api_route(
            f"/rooms/{{call_id}}{suffix}",
            route(forward, suffix),
            methods=[method],
            dependencies=[BackendAuth],
            description=what,
            name=f"{method.lower()}_room{suffix.replace('/', '_')}",
        )

    @app.get("/rooms", dependencies=[BackendAuth])
    async def rooms() -> list[dict[str, Any]]:
        """Every process's live rooms."""
        out: list[dict[str, Any]] = []
        for p in node().processes:
            if p.ready:
                with suppress(httpx.HTTPError):
                    out.extend((await p.http.get("/rooms")).raise_for_status().json())
        return out

    @app.get("/node", dependencies=[BackendAuth])
    async def node_info() -> NodeInfo:
        """The node's processes and their load."""
        return node().info()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness (``{"status": "ok"}``)."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        """Ready when at least one media process is ready and its own ``/readyz`` (Temporal)
        answers 200: ``{"status": "ready", "checks": {"processes": ...}}``; else 503
        ``not-ready`` (``api/routers/health.py``)."""

        async def one_ready() -> None:
            for p in node().processes:
                if p.ready:
                    with suppress(httpx.HTTPError):
                        if (await p.http.get("/readyz")).status_code == 200:
                            return
            raise RuntimeError("no media process is ready")

        return readiness(await run_checks({"processes": one_ready}))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Every process's metrics, labelled ``process`` (docs/metrics.md)."""
        texts: dict[int, str] = {}
        for p in node().processes:
            if p.ready:
                with suppress(httpx.HTTPError):
                    texts[p.index] = (await p.http.get("/metrics")).raise_for_status().text
        return Response(merge_metrics(texts), media_type=CONTENT_TYPE_LATEST)

    return app


def serve_node(settings: Settings, log_level: str = "info") -> None:
    """Run a node in this process until SIGTERM/SIGINT (its processes stop with it)."""
    uvicorn.run(
        create_node_app(settings),
        host=settings.media_host,
        port=settings.media_port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )

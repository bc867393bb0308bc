"""The whole embedded stack on one machine: PostgreSQL, the Temporal dev server (+ UI),
ringflow's worker and API as child processes. Used by ``ringflow up``, the demo and
the integration tests.

Everything is derived from one :class:`~ringflow.settings.Settings`:

==========================  =================================================
``data_dir``                ``postgres/`` (cluster), ``temporal.sqlite``,
                            ``logs/<process>.log``
``postgres_port``           embedded PostgreSQL on 127.0.0.1; the database is
                            the one named in ``database_url`` (``ringflow``)
``temporal_address``        the dev server's frontend (host:port)
``temporal_ui_port``        the Temporal UI
``api_host``/``api_port``   the API (uvicorn)
``media_port``              the media bridge's control API (``media.server``),
                            started only with ``media_enabled``
``worker_metrics_address``  the worker's Prometheus endpoint (docs/metrics.md)
==========================  =================================================

The worker and the API get every setting as ``RINGFLOW_*`` environment
variables (:func:`settings_env`), so all processes agree on ports and secrets.
The worker and the API can be SIGKILLed and restarted one at a time
(fault injection); :meth:`EmbeddedStack.stop` stops everything in order
(API, worker, Temporal, PostgreSQL) and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TextIO

import httpx
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from ringflow.settings import Settings, get_settings
from ringflow.stack.database import database_name, prepare_database
from ringflow.stack.ports import free_port
from ringflow.stack.postgres import SUPERUSER, EmbeddedPostgres
from ringflow.stack.processes import ChildProcess, child_env, python_module
from ringflow.stack.temporal_server import TemporalDevServer

READY_TIMEOUT_S = 60.0
"""How long the worker and the API get to become ready, seconds."""


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as a ``RINGFLOW_<NAME>`` environment variable (strings as they are,
    other values as JSON, which pydantic-settings parses back); None values are left out."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"RINGFLOW_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def isolated_settings(data_dir: Path, base: Settings | None = None, **overrides: object) -> Settings:
    """``base`` (default: from the environment) with ``data_dir`` and free loopback ports for
    PostgreSQL, Temporal, its UI and the API: a stack that runs beside any other (tests, demo)."""
    base = base if base is not None else get_settings()
    temporal_port = free_port()
    update: dict[str, object] = {
        "data_dir": data_dir,
        "postgres_port": free_port(),
        "temporal_address": f"127.0.0.1:{temporal_port}",
        "temporal_ui_port": free_port(),
        "api_host": "127.0.0.1",
        "api_port": free_port(),
    }
    media_port = free_port()
    update.update(media_port=media_port, media_url=f"http://127.0.0.1:{media_port}")
    update["worker_metrics_address"] = f"127.0.0.1:{free_port()}"
    update.update(overrides)
    return base.model_copy(update=update)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class EmbeddedStack:
    """PostgreSQL + Temporal dev server + worker + API for ``settings``.

    ``async with EmbeddedStack(settings) as stack:`` starts all and stops all.
    ``stack.settings`` are the effective settings (absolute ``data_dir``,
    ``database_url`` on the embedded PostgreSQL, ``temporal_ui_url``), the ones
    the children get. ``ui=False`` runs Temporal headless; ``worker=False`` /
    ``api=False`` leave that process out (start it later with ``start_worker``
    / ``start_api``); ``media`` (default: ``settings.media_enabled``) adds the media
    bridge process.

    ``start()`` raises ``RuntimeError`` when a port is taken or a process does
    not become ready (the message has the end of its log); whatever it started
    is stopped again.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ui: bool = True,
        worker: bool = True,
        api: bool = True,
        media: bool | None = None,
        temporal_log_level: str = "warn",
    ) -> None:
        data_dir = settings.data_dir.resolve()
        host, port = settings.temporal_host_port
        pg_url = f"postgresql://{SUPERUSER}@127.0.0.1:{settings.postgres_port}/"
        self.settings = settings.model_copy(
            update={
                "data_dir": data_dir,
                "database_url": pg_url + database_name(settings.database_url),
                "temporal_ui_url": f"http://{host}:{settings.temporal_ui_port}",
            }
        )
        self.postgres = EmbeddedPostgres(data_dir / "postgres", host="127.0.0.1", port=settings.postgres_port)
        self.temporal = TemporalDevServer(
            data_dir,
            host=host,
            port=port,
            ui_port=settings.temporal_ui_port if ui else None,
            namespace=settings.temporal_namespace,
            log_level=temporal_log_level,
        )
        env = child_env(settings_env(self.settings))
        logs = data_dir / "logs"
        self.worker = ChildProcess("worker", python_module("ringflow.worker"), env, logs / "worker.log")
        self.api = ChildProcess("api", python_module("ringflow.stack.serve_api"), env, logs / "api.log")
        self._want_worker = worker
        self._want_api = api
        # The media bridge (media/server.py) runs only where calls need media.
        self.media = ChildProcess("media", python_module("media.server"), env, logs / "media.log")
        self._want_media = settings.media_enabled if media is None else media
        self._client: Client | None = None

    # -- where things are -------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def client(self) -> Client:
        """A Temporal client on the dev server (pydantic converter). Raises ``RuntimeError``
        before ``start()``."""
        if self._client is None:
            raise RuntimeError("the stack is not started")
        return self._client

    def describe(self) -> str:
        """Where everything is, for a person: URLs, addresses, data dir and logs."""
        s = self.settings
        ui = self.temporal.ui_url or "(headless)"
        return "\n".join(
            [
                f"  API           {self.api_url}   (OpenAPI docs: {self.api_url}/docs)",
                f"  Temporal UI   {ui}",
                f"  Temporal      {s.temporal_address}  namespace {s.temporal_namespace}, "
                f"task queue {s.task_queue}",
                f"  PostgreSQL    {s.database_url}",
                f"  metrics       {self.api_url}/metrics (API), "
                + (f"http://{s.worker_metrics_address}/metrics (worker)" if s.worker_metrics_address else "")
                + (f", {s.media_url}/metrics (media bridge)" if self._want_media else ""),
                f"  data dir      {s.data_dir}",
                f"  logs          {s.data_dir / 'logs'}/{{worker,api}}.log, "
                f"{s.data_dir / 'temporal.log'}, {self.postgres.data_dir / 'server.log'}",
            ]
        )

    # -- whole stack ------------------------------------------------------------------
    async def __aenter__(self) -> EmbeddedStack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _stop_orphan_postgres(self) -> None:
        """Stop a PostgreSQL left running on our data directory by a stack that was SIGKILLed
        (the other children die with their parent; this server runs detached)."""
        pid_file = self.postgres.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if b"postgres" not in cmdline or str(self.postgres.data_dir).encode() not in cmdline:
            return
        print(f"ringflow: stopping PostgreSQL {pid} left over from an earlier run", file=sys.stderr)
        os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _check_ports(self) -> None:
        s = self.settings
        host, port = s.temporal_host_port
        wanted = [
            ("RINGFLOW_POSTGRES_PORT", "127.0.0.1", s.postgres_port),
            ("RINGFLOW_TEMPORAL_ADDRESS", host, port),
        ]
        if self.temporal.ui_port is not None:
            wanted.append(("RINGFLOW_TEMPORAL_UI_PORT", host, self.temporal.ui_port))
        if self._want_api:
            wanted.append(("RINGFLOW_API_PORT", s.api_host, s.api_port))
        if self._want_media:
            wanted.append(("RINGFLOW_MEDIA_PORT", s.media_host, s.media_port))
        if self._want_worker and s.worker_metrics_address:
            metrics_host, _, metrics_port = s.worker_metrics_address.rpartition(":")
            wanted.append(("RINGFLOW_WORKER_METRICS_ADDRESS", metrics_host, int(metrics_port)))
        taken = [f"{name} ({h}:{p})" for name, h, p in wanted if _port_in_use(h, p)]
        if taken:
            raise RuntimeError(
                "ports already in use: " + ", ".join(taken) + ". Is another `ringflow up` running? "
                "Stop it, or set these variables to free ports."
            )

    async def start(self) -> None:
        """Start PostgreSQL and Temporal (in parallel), create + migrate the database, then
        the worker and the API; returns when all are ready."""
        self._stop_orphan_postgres()
        self._check_ports()
        try:
            pg, temporal = await asyncio.gather(
                asyncio.to_thread(self.postgres.start), self.temporal.start(), return_exceptions=True
            )
            if isinstance(temporal, Client):
                self._client = temporal
            for result in (pg, temporal):
                if isinstance(result, BaseException):
                    raise result
            await prepare_database(self.settings.database_url)
            waits = []
            if self._want_worker:
                waits.append(self.start_worker())
            if self._want_api:
                waits.append(self.start_api())
            if self._want_media:
                waits.append(self.start_media())
            await asyncio.gather(*waits)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the API, the worker (graceful: running activities finish), Temporal, PostgreSQL."""
        await asyncio.to_thread(self.api.stop)
        await asyncio.to_thread(self.media.stop)
        await asyncio.to_thread(self.worker.stop)
        self._client = None
        await asyncio.to_thread(self.temporal.stop)
        await asyncio.to_thread(self.postgres.stop)

    # -- worker -----------------------------------------------------------------------
    async def start_worker(self) -> None:
        """Start the worker process and wait until it polls the task queue."""
        self.worker.start()
        await self._wait_worker_polling()

    async def stop_worker(self, timeout: float = 15.0) -> None:
        """SIGTERM the worker (graceful shutdown), SIGKILL after ``timeout`` seconds."""
        await asyncio.to_thread(self.worker.stop, timeout)

    async def kill_worker(self) -> None:
        """SIGKILL the worker: running activities and workflow tasks are lost mid-flight."""
        await asyncio.to_thread(self.worker.kill)

    async def restart_worker(self, kill: bool = False) -> None:
        """Stop (or ``kill``) the worker, start a new one, wait until it polls."""
        await (self.kill_worker() if kill else self.stop_worker())
        await self.start_worker()

    async def _wait_worker_polling(self) -> None:
        # The worker's identity is "<pid>@<host>" (the SDK's default), so a poller with our
        # child's pid proves that this very process polls, not one that was killed before.
        pid = self.worker.pid
        request = DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace,
            task_queue=TaskQueue(name=self.settings.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        await self._until(
            self.worker,
            lambda: self.client.workflow_service.describe_task_queue(request),
            lambda resp: any(p.identity.startswith(f"{pid}@") for p in resp.pollers),
        )

    # -- API --------------------------------------------------------------------------
    async def start_api(self) -> None:
        """Start the API process and wait until ``GET /healthz`` answers 200."""
        self.api.start()
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2.0) as http:
            await self._until(self.api, lambda: http.get("/healthz"), lambda r: r.status_code == 200)

    async def stop_api(self, timeout: float = 15.0) -> None:
        """SIGTERM the API (open requests finish), SIGKILL after ``timeout`` seconds."""
        await asyncio.to_thread(self.api.stop, timeout)

    async def kill_api(self) -> None:
        """SIGKILL the API: open connections and WebSockets drop at once."""
        await asyncio.to_thread(self.api.kill)

    async def restart_api(self, kill: bool = False) -> None:
        """Stop (or ``kill``) the API, start a new one, wait until it answers."""
        await (self.kill_api() if kill else self.stop_api())
        await self.start_api()

    # -- media bridge -----------------------------------------------------------------
    async def start_media(self) -> None:
        """Start the media bridge process and wait until its ``GET /healthz`` answers 200."""
        self.media.start()
        async with httpx.AsyncClient(base_url=self.settings.media_url, timeout=2.0) as http:
            await self._until(self.media, lambda: http.get("/healthz"), lambda r: r.status_code == 200)

    # -- helpers ----------------------------------------------------------------------
    async def _until(self, child: ChildProcess, probe: Callable, ready: Callable) -> None:
        """Poll ``probe()`` until ``ready(result)``; raise ``RuntimeError`` with the child's log
        tail if it exits or ``READY_TIMEOUT_S`` passes."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if not child.running:
                raise RuntimeError(f"{child.name} exited with {child.returncode}:\n{child.tail()}")
            try:
                if ready(await probe()):
                    return
            except (httpx.HTTPError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready in {READY_TIMEOUT_S} s:\n{child.tail()}")
            await asyncio.sleep(0.1)

    async def supervise(self, out: TextIO = sys.stderr, interval_s: float = 1.0) -> None:
        """Forever: restart the worker or the API when it exits by itself (``ringflow up``).
        Cancel the task to end it."""
        while True:
            await asyncio.sleep(interval_s)
            for child, start in ((self.worker, self.start_worker), (self.api, self.start_api)):
                if child.returncode is not None:
                    print(f"ringflow: {child.name} exited with {child.returncode}; restarting", file=out)
                    try:
                        await start()
                    except RuntimeError as err:
                        print(f"ringflow: {child.name} did not come back: {err}", file=out)


async def run_until_signal(settings: Settings, out: TextIO = sys.stdout) -> None:
    """``ringflow up``: start the stack, print where things are, keep the worker and the API
    running until SIGINT (Ctrl-C) or SIGTERM, then stop everything.

    Raises ``RuntimeError`` when the stack cannot start (see :meth:`EmbeddedStack.start`).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = EmbeddedStack(settings)
    print(f"ringflow: starting the embedded stack in {stack.settings.data_dir} ...", file=out, flush=True)
    starting = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting: start() cleans up after itself
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()
        print("ringflow is up:\n" + stack.describe() + "\nCtrl-C stops it.", file=out, flush=True)
        supervisor = asyncio.create_task(stack.supervise())
        await stopping
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        print("ringflow: stopping ...", file=out, flush=True)
        await stack.stop()
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

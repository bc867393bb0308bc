"""The embedded stack: the Temporal dev server (search attributes registered on every start,
workflow histories kept across a restart with the same SQLite file), child processes, and
the whole stack with its fault-injection controls."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest, RemoveSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from ringflow.contracts.search import CALL_PHASE, SEARCH_ATTRIBUTES
from ringflow.settings import Settings
from ringflow.stack.embedded import EmbeddedStack, isolated_settings, settings_env
from ringflow.stack.ports import free_port
from ringflow.stack.processes import ChildProcess, python_module
from ringflow.stack.temporal_server import TemporalDevServer

pytestmark = pytest.mark.integration


async def _custom_attributes(client: Client) -> dict[str, int]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return dict(resp.custom_attributes)


async def test_dev_server_keeps_histories_and_search_attributes_across_restart(tmp_path: Path) -> None:
    server = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    workflow_id = f"wf-{uuid.uuid4()}"
    client = await server.start()
    try:
        attrs = await _custom_attributes(client)
        for key in SEARCH_ATTRIBUTES:
            assert attrs.get(key.name) == int(key.indexed_value_type), key.name
        assert attrs[CALL_PHASE.name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        # No worker polls this queue: the workflow stays running with its first task scheduled.
        await client.start_workflow(
            "NobodyRunsThis",
            id=workflow_id,
            task_queue=f"tq-{uuid.uuid4()}",
            execution_timeout=timedelta(hours=1),
        )
        # An attribute lost from the file (as when ringflow adds a new one after the file
        # was made) comes back on the next start, although the flags alone would not do it.
        await client.operator_service.remove_search_attributes(
            RemoveSearchAttributesRequest(namespace="default", search_attributes=[CALL_PHASE.name])
        )
        assert CALL_PHASE.name not in await _custom_attributes(client)
    finally:
        server.stop()
    assert server.pid is None

    client = await server.start()
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.workflow_type == "NobodyRunsThis"
        attrs = await _custom_attributes(client)
        assert {key.name for key in SEARCH_ATTRIBUTES} <= attrs.keys()
    finally:
        server.stop()


def test_child_process_stop_and_kill(tmp_path: Path) -> None:
    child = ChildProcess(
        "sleeper",
        python_module("http.server", "--bind", "127.0.0.1", str(free_port())),
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "sleeper.log",
    )
    child.start()
    first = child.pid
    assert first is not None and child.running
    child.restart()
    assert child.pid not in (None, first)
    child.kill()
    assert not child.running and child.returncode == -9
    child.start()
    assert child.stop() == -15  # SIGTERM: http.server has no handler, so the signal ends it
    assert "starting sleeper" in child.tail()


async def test_embedded_stack_runs_restarts_and_stops_every_process(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "data")
    stack = EmbeddedStack(settings, ui=False)
    async with stack:
        assert stack.settings.database_url.endswith(f":{settings.postgres_port}/ringflow")
        pids = {
            "postgres": stack.postgres.pid,
            "temporal": stack.temporal.pid,
            "worker": stack.worker.pid,
            "api": stack.api.pid,
        }
        assert all(pids.values()), pids
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
        # The children see the stack's settings, not the defaults.
        env = stack.worker.env
        assert env["RINGFLOW_TEMPORAL_ADDRESS"] == settings.temporal_address
        assert env["RINGFLOW_DATABASE_URL"] == stack.settings.database_url

        await stack.restart_worker(kill=True)
        assert stack.worker.pid not in (None, pids["worker"])
        await stack.restart_api(kill=True)
        assert stack.api.pid not in (None, pids["api"])
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            assert (await http.get("/healthz")).status_code == 200
        live = [stack.postgres.pid, stack.temporal.pid, stack.worker.pid, stack.api.pid]
    assert None not in live
    assert [pid for pid in {*pids.values(), *live} if not _gone(pid)] == []
    assert stack.worker.returncode == 0  # graceful: SIGTERM -> shutdown -> exit 0


def _gone(pid: int | None) -> bool:
    """True when process ``pid`` no longer runs (no /proc entry, or a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_settings_env_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = isolated_settings(tmp_path, ring_timeout_s=4.5)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings  # type: ignore[call-arg]


def test_api_log_redacts_party_tokens() -> None:
    """Party tokens in query strings (push WebSocket, /app?token=) never reach the API log."""
    import logging

    from ringflow.stack.serve_api import RedactTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/push?token=eyJhbGciOi.abc.def&x=1", "1.1", 101),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/push?token=***&x=1 HTTP/1.1" 101'
    ws = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '"WebSocket /app?token=secret" [accepted]', None, None
    )
    RedactTokens().filter(ws)
    assert ws.getMessage() == '"WebSocket /app?token=***" [accepted]'

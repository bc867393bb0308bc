"""The ``ringflow`` command line: typer's CliRunner (in-process, quick) for help and settings;
the real script as a subprocess (``python -m ringflow.cli``, environment and working
directory of its own) for what a user sees: settings followed by every command (issue 12
item 1), one-line errors with exit code 1 and the traceback only under ``--debug``, and
``ringflow calls list/show/tail`` against a real stack (issue 12 item 7).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from ringflow.cli import app, parse_when
from ringflow.settings import Settings, get_settings
from ringflow.stack.embedded import settings_env
from ringflow.stack.ports import free_port
from tests.integration_helpers import LOBBY, World, running_world

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGFLOW_API_PORT", "9123")
    monkeypatch.setenv("RINGFLOW_API_KEY", "secret-key-of-this-test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("up", "worker", "api", "migrate", "directory", "settings", "demo", "device"):
        assert command in result.output
    sub = runner.invoke(app, ["directory", "--help"])
    assert sub.exit_code == 0 and "load" in sub.output
    device = runner.invoke(app, ["device", "--help"])
    assert device.exit_code == 0 and "run" in device.output
    demo = runner.invoke(app, ["demo", "--help"])
    assert "--ring-timeout" in demo.output and "--keep-stack" in demo.output


def test_settings_prints_env_lines_from_the_environment_with_secrets_masked() -> None:
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 0, result.output
    lines = {line.split("=", 1)[0]: line for line in result.output.splitlines()}
    assert lines["RINGFLOW_API_PORT"].startswith("RINGFLOW_API_PORT=9123 ")
    assert "# Port the API listens on" in lines["RINGFLOW_API_PORT"]
    assert "RINGFLOW_TASK_QUEUE" in lines
    assert "secret-key-of-this-test" not in result.output
    assert lines["RINGFLOW_API_KEY"].startswith("RINGFLOW_API_KEY=********")


def test_settings_json_with_secrets() -> None:
    result = runner.invoke(app, ["settings", "--json", "--show-secrets"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["api_port"] == 9123
    assert values["api_key"] == "secret-key-of-this-test"


def test_directory_load_rejects_a_missing_file() -> None:
    result = runner.invoke(app, ["directory", "load", "/nonexistent/building.yaml"])
    assert result.exit_code == 2


# ---------------------------------------------------------------- settings followed everywhere


def test_database_and_api_urls_follow_the_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGFLOW_POSTGRES_PORT", "6000")
    monkeypatch.setenv("RINGFLOW_API_HOST", "0.0.0.0")
    settings = Settings()
    assert settings.database_url == "postgresql://postgres@127.0.0.1:6000/ringflow"
    assert settings.api_url == "http://127.0.0.1:9123"  # the fixture's port; 0.0.0.0 -> loopback
    assert Settings(api_host="::1", api_port=1).api_url == "http://[::1]:1"
    moved = settings.model_copy(update={"postgres_port": 7000, "api_port": 7001})
    assert moved.database_url.endswith(":7000/ringflow") and moved.api_url == "http://127.0.0.1:7001"
    monkeypatch.setenv("RINGFLOW_DATABASE_URL", "postgresql://ringflow@db:5432/rf")
    monkeypatch.setenv("RINGFLOW_API_URL", "https://ringflow.example.org")
    explicit = Settings().model_copy(update={"postgres_port": 7000})
    assert explicit.database_url == "postgresql://ringflow@db:5432/rf"
    assert explicit.api_url == "https://ringflow.example.org"


def test_parse_when() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_when("15m", now) == now - timedelta(minutes=15)
    assert parse_when("2h", now) == now - timedelta(hours=2)
    assert parse_when("2026-11-30T10:00:00+00:00", now) == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert parse_when("2026-11-30T10:00", now).tzinfo is not None  # local time


def cli_env(settings: dict[str, str] | None) -> dict[str, str]:
    """This process's environment without its RINGFLOW_* variables, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RINGFLOW_")}, **(settings or {})}


async def aringflow(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """:func:`ringflow` from a test coroutine (in a thread: the stack's clients go on)."""
    return await asyncio.to_thread(ringflow, *args, env=env, cwd=cwd)


def ringflow(
    *args: str, env: dict[str, str] | None = None, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``ringflow ARGS`` as a user would, with only ``env``'s RINGFLOW_* settings."""
    return subprocess.run(
        [sys.executable, "-m", "ringflow.cli", *args],
        env=cli_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only stderr line of a failed command (asserts exit code 1 and no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ringflow: "), lines
    return lines[0]


def test_bad_building_files_are_one_line(tmp_path: Path) -> None:
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("units:\n  - id: '101'\n    residents: [alice\n")
    line = one_error_line(ringflow("directory", "load", str(syntax), cwd=tmp_path))
    assert line.startswith(f"ringflow: {syntax}: not valid YAML at line 4, column 1: "), line
    schema = tmp_path / "schema.yaml"
    schema.write_text("units:\n  - id: '101'\n    name: A\n    policy: {ring_timeout_s: -1}\n")
    line = one_error_line(ringflow("directory", "load", str(schema), cwd=tmp_path))
    assert line == (
        f"ringflow: {schema}: 1 invalid field: units.0.policy.ring_timeout_s: Input should be greater than 0"
    )
    debug = ringflow("--debug", "directory", "load", str(schema), cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "ValidationError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line


def test_unreachable_database_follows_the_postgres_port(tmp_path: Path) -> None:
    port = free_port()
    env = {"RINGFLOW_POSTGRES_PORT": str(port)}
    building = str(ROOT / "examples" / "building.yaml")
    line = one_error_line(ringflow("directory", "load", building, env=env, cwd=tmp_path))
    assert line.startswith(
        f"ringflow: cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:{port}/ringflow: "
    )
    assert "RINGFLOW_POSTGRES_PORT" in line
    line = one_error_line(ringflow("migrate", env=env, cwd=tmp_path))
    assert f"127.0.0.1:{port}/ringflow" in line
    debug = ringflow("--debug", "directory", "load", building, env=env, cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "ConnectionRefusedError" in debug.stderr or "OSError" in debug.stderr


def test_unreachable_api_follows_the_api_port(tmp_path: Path) -> None:
    port = free_port()
    env = {"RINGFLOW_API_PORT": str(port)}
    for args in (("calls", "list"), ("calls", "show", "x"), ("device", "run", "--sn", "LOBBY-1")):
        line = one_error_line(ringflow(*args, env=env, cwd=tmp_path))
        assert line.startswith(f"ringflow: cannot reach the API at http://127.0.0.1:{port}: "), (args, line)
    debug = ringflow("--debug", "calls", "list", env=env, cwd=tmp_path)
    assert debug.returncode == 1 and "httpx.ConnectError" in debug.stderr


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    line = one_error_line(ringflow("calls", "list", env={"RINGFLOW_API_PORT": "eighty"}, cwd=tmp_path))
    assert line.startswith("ringflow: invalid settings: RINGFLOW_API_PORT: "), line


# ---------------------------------------------------------------- against a real stack


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_world(tmp_path_factory.mktemp("cli")) as w:
        yield w


@pytest.fixture
def stack_env(world: World) -> dict[str, str]:
    """The stack's settings as the environment of a CLI process (as `ringflow up` would set)."""
    return settings_env(world.stack.settings)


async def test_wrong_key_and_unknown_call(world: World, stack_env: dict[str, str], tmp_path: Path) -> None:
    wrong = {**stack_env, "RINGFLOW_API_KEY": "not-the-key-of-this-stack"}
    for args in (("calls", "list"), ("device", "run", "--sn", "LOBBY-1", "--once", "--call", "101")):
        result = await aringflow(*args, env=wrong, cwd=tmp_path)
        line = one_error_line(result)
        assert line.startswith("ringflow: the API refused the key: "), (args, line)
        assert "RINGFLOW_API_KEY" in line
    result = await aringflow("calls", "show", "no-such-call", env=stack_env, cwd=tmp_path)
    assert one_error_line(result) == "ringflow: no call 'no-such-call'"
    debug = await aringflow("--debug", "calls", "show", "no-such-call", env=stack_env, cwd=tmp_path)
    assert debug.returncode == 1 and "ApiError" in debug.stderr and "Traceback" in debug.stderr


async def test_calls_list_show_and_tail(world: World, stack_env: dict[str, str], tmp_path: Path) -> None:
    # follow from now on, before the call exists
    tail = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "ringflow.cli", "calls", "tail", "--interval", "0.2"],
        env=cli_env(stack_env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        [resident] = await world.residents(1, "cli")
        await world.connect(resident)  # online, lets it ring
        await asyncio.sleep(1.5)  # tail is up and has listed once
        call_id = await world.place(LOBBY, [resident], ring_timeout_s=1.0, key=f"cli-{uuid.uuid4().hex[:8]}")
        view = await world.wait_ended(call_id, 30)
        await asyncio.sleep(1.5)  # a few more polls
    finally:
        tail.send_signal(signal.SIGINT)
        raw_out, raw_err = await asyncio.wait_for(tail.communicate(), 20)
    out, err = raw_out.decode(), raw_err.decode()
    assert tail.returncode == 0, (out, err)
    followed = [line for line in out.splitlines() if line.startswith(call_id + "  ")]
    assert followed[0] == f"{call_id}  new call: device:LOBBY-1 (Maple Court Lobby) -> user:{resident.id}"
    names = [line.split()[2] for line in followed[1:-1]]
    assert names == [e["name"] for e in view["events"]], followed
    assert followed[-1] == f"{call_id}  ended: timeout, keepTime 0 s"

    listed = await aringflow("calls", "list", "--user", resident.id, env=stack_env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["STARTED", "CALL", "CALLER"]
    assert len(rows) == 1 and rows[0].split()[2:8] == [
        call_id,
        "device:LOBBY-1",
        "-",
        "ended",
        "timeout",
        "-",
    ]
    as_json = await asyncio.to_thread(
        ringflow,
        "calls",
        "list",
        "--since",
        "10m",
        "--end-reason",
        "timeout",
        "--json",
        env=stack_env,
        cwd=tmp_path,
    )
    assert call_id in [c["call_id"] for c in json.loads(as_json.stdout)["items"]]
    none = await aringflow("calls", "list", "--until", "1d", env=stack_env, cwd=tmp_path)
    assert none.stdout.strip() == "no calls"

    svg = tmp_path / "call.svg"
    shown = await aringflow("calls", "show", call_id, "--svg", str(svg), env=stack_env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"device:LOBBY-1 (Maple Court Lobby) -> user:{resident.id}: call {call_id}"
    assert lines[1].split() == ["time", "event", "party", "listener", "detail"]
    assert [line.split()[1] for line in lines[2 : 2 + len(view["events"])]] == [
        e["name"] for e in view["events"]
    ]
    assert "  end reason  : timeout" in lines and f"  attempts    : {resident.id}=no_answer" in lines
    assert svg.read_text().startswith("<?xml") and "<svg" in svg.read_text()

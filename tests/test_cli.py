"""The ``ringflow`` command line, through typer's CliRunner (in-process, quick)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ringflow.cli import app
from ringflow.settings import get_settings

runner = CliRunner()


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

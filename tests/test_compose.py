"""docker-compose.yml, the production topology: validated by ``docker-compose config`` (no
Docker engine needed) and checked for the service graph ringflow relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringflow.contracts.search import SEARCH_ATTRIBUTES, dev_server_flags
from ringflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "RINGFLOW_API_KEY": "api-key-0123",
    "RINGFLOW_TOKEN_SECRET": "t" * 40,
}


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed: `apt-get install -y docker-compose` (./run test does it "
            "when running as root); it validates docker-compose.yml without a Docker engine"
        )
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    result = _compose(SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service["depends_on"].items()}


def test_services(services: dict[str, Any]) -> None:
    assert set(services) == {
        "postgresql",
        "temporal",
        "temporal-search-attributes",
        "temporal-ui",
        "ringflow-migrate",
        "ringflow-api",
        "ringflow-worker",
    }
    assert services["postgresql"]["image"].startswith("postgres:16")
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_start_order_waits_for_health_and_one_shots(services: dict[str, Any]) -> None:
    assert _depends(services["temporal"]) == {"postgresql": "service_healthy"}
    assert _depends(services["ringflow-migrate"]) == {"postgresql": "service_healthy"}
    assert _depends(services["temporal-search-attributes"]) == {"temporal": "service_healthy"}
    for name in ("ringflow-api", "ringflow-worker"):
        assert _depends(services[name]) == {
            "ringflow-migrate": "service_completed_successfully",
            "temporal": "service_healthy",
            "temporal-search-attributes": "service_completed_successfully",
        }, name
    for name in ("postgresql", "temporal", "ringflow-api"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(services["postgresql"]["healthcheck"]["test"])
    assert "health" in services["temporal"]["healthcheck"]["test"]


def test_ringflow_services_share_one_image_and_valid_settings(services: dict[str, Any]) -> None:
    ours = {name: services[name] for name in ("ringflow-migrate", "ringflow-api", "ringflow-worker")}
    assert {s["image"] for s in ours.values()} == {"ringflow:latest"}
    assert [name for name, s in ours.items() if "build" in s] == ["ringflow-migrate"]
    assert {name: s["command"] for name, s in ours.items()} == {
        "ringflow-migrate": ["ringflow", "migrate"],
        "ringflow-api": ["ringflow", "api"],
        "ringflow-worker": ["ringflow", "worker"],
    }
    envs = [s["environment"] for s in ours.values()]
    assert envs[0] == envs[1] == envs[2]
    env = envs[0]
    assert all(key.startswith("RINGFLOW_") for key in env)
    fields = {key.removeprefix("RINGFLOW_").lower(): value for key, value in env.items()}
    assert set(fields) <= set(Settings.model_fields), set(fields) - set(Settings.model_fields)
    settings = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    assert settings.temporal_address == "temporal:7233"
    assert settings.database_url == "postgresql://ringflow:pg-secret@postgresql:5432/ringflow"
    assert settings.api_key == SECRETS["RINGFLOW_API_KEY"]
    api = services["ringflow-api"]
    assert f"{settings.api_port}/healthz" in " ".join(api["healthcheck"]["test"])
    assert settings.api_port in [_container_port(p) for p in api["ports"]]


def _container_port(spec: Any) -> int:
    """The container side of a ports entry: "8080:8080" (compose v1) or {target: 8080} (v2)."""
    if isinstance(spec, dict):
        return int(spec["target"])
    return int(str(spec).rsplit(":", 1)[-1].split("/")[0])


def test_search_attributes_match_the_contract(services: dict[str, Any]) -> None:
    script = " ".join(services["temporal-search-attributes"]["command"])
    registered: dict[str, str] = {}
    for part in script.split("&&"):
        words = part.split()
        kind = words[words.index("--type") + 1]
        for i, word in enumerate(words):
            if word == "--name":
                registered[words[i + 1]] = kind
    flags = dev_server_flags()
    expected = dict(f.split("=") for f in flags[1::2])
    assert registered == expected
    assert set(registered) == {key.name for key in SEARCH_ATTRIBUTES}


def test_secrets_are_required() -> None:
    result = _compose({k: v for k, v in SECRETS.items() if k != "RINGFLOW_API_KEY"})
    assert result.returncode != 0
    assert "RINGFLOW_API_KEY" in result.stderr

"""docker-compose.yml, the production deployment, and its files under deploy/: validated by
``docker-compose config`` (no Docker engine needed) for every profile, and checked for what
ringflow relies on: the start order and health checks, one image with valid settings, the
media bridge's network, the proxy in front of the API replicas, the scrape targets, and
alert rules and a dashboard that only use metrics of docs/metrics.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from ringflow.contracts.search import SEARCH_ATTRIBUTES, dev_server_flags
from ringflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "RINGFLOW_API_KEY": "api-key-0123",
    "RINGFLOW_TOKEN_SECRET": "t" * 40,
    "RINGFLOW_MEDIA_ANNOUNCED_IP": "203.0.113.7",
}
PROFILES = {
    "default": [],
    "turn": ["turn"],
    "observability": ["observability"],
    "all": ["turn", "observability"],
}
OURS = ("ringflow-migrate", "ringflow-api", "ringflow-worker", "ringflow-bridge")

METRICS_DOC = ROOT / "docs" / "metrics.md"
CONTRACT_METRICS = {
    # API
    "ringflow_http_requests_total",
    "ringflow_http_request_duration_seconds",
    "ringflow_push_backlog",
    "ringflow_push_oldest_unacked_seconds",
    "ringflow_call_requests_total",
    # worker
    "ringflow_calls_started_total",
    "ringflow_calls_answered_total",
    "ringflow_calls_missed_total",
    "ringflow_calls_aborted_total",
    "ringflow_calls_ended_total",
    "ringflow_call_setup_seconds",
    "ringflow_ring_to_answer_seconds",
    "temporal_workflow_task_schedule_to_start_latency_seconds",
    # bridge
    "ringflow_media_rooms",
    "ringflow_media_peers",
    "ringflow_media_bytes_total",
    "ringflow_media_packets_lost_total",
    "ringflow_media_jitter_seconds",
    "ringflow_media_rtt_seconds",
    "ringflow_media_bitrate_bits_per_second",
}
"""The metric names of issue 12 (docs/metrics.md is their contract once it exists)."""

METRIC_NAME = re.compile(r"\b(?:ringflow|temporal)_[a-z0-9_]*[a-z0-9]\b")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def _compose(env: dict[str, str], *profiles: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of the repository's file with exactly ``env`` (and no .env)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not installed: `apt-get install -y docker-compose` (./run test does it "
            "when running as root); it validates docker-compose.yml without a Docker engine"
        )
    flags = [arg for p in profiles for arg in ("--profile", p)]
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:  # not a developer's .env
        return subprocess.run(
            [
                binary,
                "--project-directory",
                str(ROOT),
                "-f",
                str(ROOT / "docker-compose.yml"),
                "--env-file",
                empty.name,
                *flags,
                "config",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT), **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _config(env: dict[str, str], *profiles: str) -> dict[str, Any]:
    result = _compose(env, *profiles)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _config(SECRETS, *PROFILES["all"])


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = config["services"]
    return found


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def _active(services: dict[str, Any], profiles: list[str]) -> set[str]:
    """The services ``docker-compose --profile ... up`` starts: those without profiles and
    those of an enabled profile."""
    return {n for n, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = service["environment"]
    return env


def _settings(service: dict[str, Any]) -> Settings:
    """The settings a ringflow service runs with (its environment alone, as pydantic-settings
    reads it in the container): every variable is a ``RINGFLOW_`` setting."""
    env = _env(service)
    assert all(key.startswith("RINGFLOW_") for key in env)
    fields = {key.removeprefix("RINGFLOW_").lower() for key in env}
    assert fields <= set(Settings.model_fields), fields - set(Settings.model_fields)
    with mock.patch.dict(os.environ, env, clear=True):  # parsed as the container parses them
        return Settings(_env_file=None)  # type: ignore[call-arg]


def _container_port(spec: Any) -> int:
    """The container side of a ports entry: "8080:8080" (compose v1) or {target: 8080} (v2)."""
    if isinstance(spec, dict):
        return int(spec["target"])
    return int(str(spec).rsplit(":", 1)[-1].split("/")[0])


def _health_command(service: dict[str, Any]) -> str:
    return " ".join(service["healthcheck"]["test"])


# -- the file and its profiles -------------------------------------------------------------


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_validates(profile: str) -> None:
    services = _config(SECRETS, *PROFILES[profile])["services"]
    active = _active(services, PROFILES[profile])
    expected = {
        "postgresql",
        "temporal",
        "temporal-search-attributes",
        "temporal-ui",
        "ringflow-migrate",
        "ringflow-api",
        "ringflow-proxy",
        "ringflow-worker",
        "ringflow-bridge",
    }
    if "turn" in PROFILES[profile]:
        expected |= {"coturn"}
    if "observability" in PROFILES[profile]:
        expected |= {"prometheus", "grafana"}
    assert active == expected
    for name in active:  # nothing started waits for a service its profile leaves out
        assert set(_depends(services[name])) <= active, name


def test_profiles_of_the_optional_services(services: dict[str, Any]) -> None:
    assert services["coturn"]["profiles"] == ["turn"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]


@pytest.mark.parametrize("missing", sorted(set(SECRETS) - {"RINGFLOW_MEDIA_ANNOUNCED_IP"}))
def test_a_missing_secret_is_a_clear_error(missing: str) -> None:
    result = _compose({k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr, result.stderr


def test_optional_profiles_refuse_to_start_without_their_secrets(services: dict[str, Any]) -> None:
    """compose 1.29 interpolates every service whatever the profile, so a ``${X:?}`` there
    would make X required for everyone: these check at container start instead."""
    coturn = " ".join(services["coturn"]["entrypoint"] + services["coturn"]["command"])
    for var in ("TURN_SECRET", "TURN_EXTERNAL_IP"):
        assert f'test -n "$${var}"' in coturn
    assert "exit 2" in coturn and "exec turnserver" in coturn
    assert _env(services["coturn"])["TURN_EXTERNAL_IP"] == SECRETS["RINGFLOW_MEDIA_ANNOUNCED_IP"]
    grafana = " ".join(services["grafana"]["entrypoint"] + services["grafana"]["command"])
    assert 'test -n "$$GF_SECURITY_ADMIN_PASSWORD"' in grafana and "exec /run.sh" in grafana


def test_bind_mounts_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("/"):
                assert Path(source).exists(), (name, source)


# -- start order and health -----------------------------------------------------------------


def test_start_order_waits_for_health_and_one_shots(services: dict[str, Any]) -> None:
    one_shots = {
        "ringflow-migrate": "service_completed_successfully",
        "temporal": "service_healthy",
        "temporal-search-attributes": "service_completed_successfully",
    }
    assert _depends(services["temporal"]) == {"postgresql": "service_healthy"}
    assert _depends(services["ringflow-migrate"]) == {"postgresql": "service_healthy"}
    assert _depends(services["temporal-search-attributes"]) == {"temporal": "service_healthy"}
    assert _depends(services["ringflow-worker"]) == one_shots
    assert _depends(services["ringflow-bridge"]) == one_shots
    assert _depends(services["ringflow-api"]) == {**one_shots, "ringflow-bridge": "service_healthy"}
    assert _depends(services["ringflow-proxy"]) == {"ringflow-api": "service_healthy"}
    assert _depends(services["grafana"]) == {"prometheus": "service_healthy"}
    assert "pg_isready" in _health_command(services["postgresql"])
    assert "health" in services["temporal"]["healthcheck"]["test"]


def test_every_service_others_depend_on_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dep, condition in _depends(service).items():
            assert condition in ("service_healthy", "service_completed_successfully"), (name, dep)
            if condition == "service_healthy":
                assert services[dep]["healthcheck"]["test"], dep
            else:  # a one-shot
                assert services[dep]["restart"] == "no", dep
    for name in ("ringflow-api", "ringflow-bridge", "ringflow-worker", "ringflow-proxy"):
        assert services[name]["healthcheck"]["test"], name


def test_health_checks_use_readiness(services: dict[str, Any]) -> None:
    api = _settings(services["ringflow-api"])
    assert f"127.0.0.1:{api.api_port}/readyz" in _health_command(services["ringflow-api"])
    bridge = _settings(services["ringflow-bridge"])
    assert f"127.0.0.1:{bridge.media_port}/readyz" in _health_command(services["ringflow-bridge"])
    worker = _settings(services["ringflow-worker"])
    port = worker.worker_metrics_address.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}/metrics" in _health_command(services["ringflow-worker"])


# -- ringflow's services ----------------------------------------------------------------------


def test_ringflow_services_share_one_image_and_valid_settings(services: dict[str, Any]) -> None:
    ours = {name: services[name] for name in OURS}
    assert {s["image"] for s in ours.values()} == {"ringflow:latest"}
    assert [name for name, s in ours.items() if "build" in s] == ["ringflow-migrate"]
    assert {name: s["command"] for name, s in ours.items()} == {
        "ringflow-migrate": ["ringflow", "migrate"],
        "ringflow-api": ["ringflow", "api"],
        "ringflow-worker": ["ringflow", "worker"],
        "ringflow-bridge": ["python", "-m", "media.server"],
    }
    common = _env(services["ringflow-api"])
    assert _env(services["ringflow-worker"]) == _env(services["ringflow-migrate"]) == common
    bridge_only = {k: v for k, v in _env(services["ringflow-bridge"]).items() if common.get(k) != v}
    assert set(bridge_only) == {
        "RINGFLOW_MEDIA_HOST",
        "RINGFLOW_MEDIA_LISTEN_IPS",
        "RINGFLOW_MEDIA_ANNOUNCED_IP",
        "RINGFLOW_MEDIA_NODE_URL",
        "RINGFLOW_MEDIA_REGISTER",
        "RINGFLOW_MEDIA_PROCESSES",
        "RINGFLOW_MEDIA_ALLOWED_NETWORKS",
        "RINGFLOW_MEDIA_RECORDINGS_DIR",
    }
    settings = _settings(services["ringflow-api"])
    assert settings.temporal_address == "temporal:7233"
    assert settings.database_url == "postgresql://ringflow:pg-secret@postgresql:5432/ringflow"
    assert settings.api_key == SECRETS["RINGFLOW_API_KEY"]
    assert settings.token_secret == SECRETS["RINGFLOW_TOKEN_SECRET"]
    assert settings.api_host == "0.0.0.0"
    for name in OURS:
        assert _settings(services[name]).media_enabled, name


def test_media_bridge_service(services: dict[str, Any]) -> None:
    bridge = services["ringflow-bridge"]
    settings = _settings(bridge)
    api = _settings(services["ringflow-api"])
    # The API and the workers reach the bridge's control API by its service name.
    assert api.media_url == f"http://ringflow-bridge:{settings.media_port}"
    assert settings.media_host == "0.0.0.0"
    assert str(settings.media_port) in bridge["expose"]
    assert settings.media_listen_ips == ["0.0.0.0"]
    assert settings.media_ice_servers == []
    assert str(settings.media_recordings_dir) in {v.split(":")[1] for v in bridge["volumes"]}
    # issue 13: every node registers itself (node registry in PostgreSQL) with its own container
    # address, announced and as its control URL; one media process per core
    assert settings.media_register and settings.media_processes == 0
    assert settings.media_announced_ip == "auto" and settings.media_node_url == "auto"
    assert settings.media_node_id is None  # <container hostname>:<port>: unique per replica
    assert not bridge.get("ports") and "sysctls" not in bridge  # nothing a second replica collides on
    assert bridge["scale"] == 1
    network = _config(SECRETS)["networks"]["default"]  # where the nodes' addresses are (MEDIA_SUBNET)
    assert network["ipam"]["config"][0]["subnet"] == "172.31.250.0/24"


def test_bridge_nodes_scale_and_coturn_relays_to_them() -> None:
    """``--scale ringflow-bridge=N`` (or ``RINGFLOW_BRIDGE_NODES``): N nodes, each announcing its
    own address; the API and workers find them in the registry (``RINGFLOW_MEDIA_URL`` only
    serves while none registered). coturn may relay to the nodes' subnet."""
    env = {
        **SECRETS,
        "RINGFLOW_BRIDGE_NODES": "3",
        "MEDIA_SUBNET": "10.77.0.0/24",
        "MEDIA_PEER_RANGE": "10.77.0.0-10.77.0.255",
    }
    config = _config(env, "turn")
    services = config["services"]
    assert services["ringflow-bridge"]["scale"] == 3
    assert config["networks"]["default"]["ipam"]["config"][0]["subnet"] == "10.77.0.0/24"
    coturn = services["coturn"]
    assert _env(coturn)["TURN_BRIDGE_PEERS"] == "10.77.0.0-10.77.0.255"
    assert '--allowed-peer-ip="$$TURN_BRIDGE_PEERS"' in " ".join(coturn["command"])
    # the API and the workers still need no per-node setting
    assert _settings(services["ringflow-api"]).media_url == "http://ringflow-bridge:8090"
    # without the public IP the stack validates (coturn alone needs it, at its start)
    assert _compose({k: v for k, v in SECRETS.items() if k != "RINGFLOW_MEDIA_ANNOUNCED_IP"}).returncode == 0


def test_turn_ephemeral_credentials() -> None:
    """coturn and the ringflow services share TURN_SECRET (coturn ``use-auth-secret`` +
    ``static-auth-secret``, the TURN REST API scheme of ringflow/ice.py): no static user
    anywhere; without the variables, no TURN (host candidates, as the embedded stack)."""
    env = {
        **SECRETS,
        "TURN_SECRET": "turn-secret-0123456789",
        "RINGFLOW_TURN_URLS": '["turn:turn.example.com:3478?transport=udp"]',
        "RINGFLOW_MEDIA_ICE_SERVERS": '["stun:turn.example.com:3478"]',
    }
    services = _config(env, "turn")["services"]
    for name in OURS:  # the API gives them to the parties, the bridge uses them itself
        settings = _settings(services[name])
        assert settings.turn_urls == ["turn:turn.example.com:3478?transport=udp"], name
        assert settings.turn_secret == env["TURN_SECRET"] and settings.turn_ttl_s == 86400, name
        assert settings.media_ice_servers == ["stun:turn.example.com:3478"], name
    coturn = services["coturn"]
    assert _env(coturn)["TURN_SECRET"] == env["TURN_SECRET"]
    command = " ".join(coturn["entrypoint"] + coturn["command"])
    assert '--static-auth-secret="$$TURN_SECRET"' in command and "--user" not in command
    conf = [
        line.strip()
        for line in (DEPLOY / "coturn" / "turnserver.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "use-auth-secret" in conf and "lt-cred-mech" not in conf
    assert not [line for line in conf if line.startswith(("user=", "static-auth-secret"))]  # no secret in git
    none = _settings(_config(SECRETS)["services"]["ringflow-api"])
    assert (none.turn_urls, none.turn_secret, none.media_ice_servers) == ([], "", [])


def test_api_replicas_behind_the_proxy(services: dict[str, Any]) -> None:
    api = services["ringflow-api"]
    assert "ports" not in api  # no host port of their own: `--scale ringflow-api=N` works
    assert int(api["scale"]) >= 2
    assert int(services["ringflow-worker"]["scale"]) >= 2
    settings = _settings(api)
    assert str(settings.api_port) in api["expose"]
    proxy = services["ringflow-proxy"]
    assert [_container_port(p) for p in proxy["ports"]] == [8080]
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf  # Docker's DNS: every replica, re-resolved
    assert f"http://ringflow-api:{settings.api_port}" in conf
    assert "proxy_set_header Upgrade $http_upgrade" in conf  # WebSocket push
    assert "listen 8080;" in conf


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


# -- observability ---------------------------------------------------------------------------


def documented_metrics() -> set[str]:
    """Metric names of docs/metrics.md (every ``ringflow_*`` / ``temporal_*`` name in it);
    the names of issue 12 while that file does not exist yet."""
    if not METRICS_DOC.exists():
        return CONTRACT_METRICS
    return set(METRIC_NAME.findall(METRICS_DOC.read_text()))


def _known(name: str, documented: set[str]) -> bool:
    """Whether ``name`` as used in PromQL is a documented metric or one of its series
    (histogram ``_bucket``/``_sum``/``_count``; a counter documented without ``_total``)."""
    candidates = {name}
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        if name.endswith(suffix):
            candidates.add(name.removesuffix(suffix))
    return bool(candidates & documented)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEPLOY / "grafana" / "dashboards" / "ringflow.json").read_text())
    return doc


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside
        if panel["type"] != "row":
            yield panel


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def test_alert_rules_are_prometheus_rule_files() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert set(doc) == {"groups"}
    names = [group["name"] for group in doc["groups"]]
    assert len(names) == len(set(names))
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            assert DURATION.match(rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    promtool = shutil.which("promtool")
    if promtool is not None:  # not installed by ./run; checked where it is
        done = subprocess.run(
            [promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_cover_issue_12() -> None:
    """Setup latency p99, missed-call rate, push backlog, task-queue backlog (issue 12 item 5),
    the webhook backlog (issue 9)."""
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    used = " ".join(exprs.values())
    assert "histogram_quantile(0.99" in used and "ringflow_call_setup_seconds_bucket" in used
    assert "ringflow_calls_missed_total" in used
    assert "ringflow_push_backlog" in used
    assert "ringflow_webhook_backlog" in used
    assert "temporal_workflow_task_schedule_to_start_latency_seconds_bucket" in used


def test_alert_and_dashboard_metrics_are_documented() -> None:
    documented = documented_metrics()
    assert documented, METRICS_DOC
    for source, exprs in (
        ("alerts.yml", [r["expr"] for r in alert_rules()]),
        ("ringflow.json", dashboard_exprs()),
    ):
        used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
        unknown = sorted(name for name in used if not _known(name, documented))
        assert not unknown, f"{source} uses metrics that docs/metrics.md does not list: {unknown}"


def test_dashboard_shows_every_call_metric() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    missing = sorted(m for m in CONTRACT_METRICS if not any(_known(u, {m}) for u in used))
    assert not missing


def test_dashboard_panels_have_a_datasource_and_targets() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    doc = dashboard()
    assert doc["uid"] and doc["title"]
    panels = list(dashboard_panels())
    assert len(panels) >= 10
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_grafana_provisioning_matches_the_mounts(services: dict[str, Any]) -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert Path(mounts["/etc/grafana/provisioning"]) == DEPLOY / "grafana" / "provisioning"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "ringflow.yml").read_text()
    )
    [entry] = provider["providers"]
    path = entry["options"]["path"]
    assert Path(mounts[path]) == DEPLOY / "grafana" / "dashboards"
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/ringflow.json"


def test_prometheus_scrapes_every_replica_of_each_service(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load(Path(mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert [Path(mounts[f]) for f in config["rule_files"]] == [DEPLOY / "prometheus" / "alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = _settings(services["ringflow-api"])
    worker = _settings(services["ringflow-worker"])
    bridge = _settings(services["ringflow-bridge"])
    expected = {
        "ringflow-api": api.api_port,
        "ringflow-worker": int(worker.worker_metrics_address.rsplit(":", 1)[1]),
        "ringflow-bridge": bridge.media_port,
    }
    assert worker.worker_metrics_address.startswith("0.0.0.0:")  # reachable from prometheus
    for name, port in expected.items():
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        [sd] = job["dns_sd_configs"]  # Docker's DNS: one A record per replica
        assert sd == {**sd, "names": [name], "type": "A", "port": port}, name
        assert name in services

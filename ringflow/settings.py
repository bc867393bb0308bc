"""Settings: every address, port, secret and default timer, from ``RINGFLOW_*`` environment variables.

One env prefix (``RINGFLOW_``) for the embedded stack, the docker-compose
services and the tests, so the same code runs against an external Temporal
cluster and PostgreSQL. Durations are seconds (float).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DERIVED_SETTINGS = ("database_url", "api_url")
"""Settings that, unless given explicitly, follow others: ``database_url`` the embedded
PostgreSQL's ``postgres_port``, ``api_url`` the API's ``api_host``/``api_port`` (issue 12: with
``RINGFLOW_POSTGRES_PORT=6000`` every command reaches port 6000, not a hard-coded 5433)."""

DEV_API_KEY = "dev-api-key"
"""The embedded stack's default ``api_key``: refused when ``environment`` is ``production``."""

DEV_TOKEN_SECRET = "dev-token-secret-change-me-0123456789"
"""The embedded stack's default ``token_secret``: refused when ``environment`` is ``production``."""


class Settings(BaseSettings):
    """ringflow's configuration; see the field descriptions (also ``ringflow settings``)."""

    model_config = SettingsConfigDict(env_prefix="RINGFLOW_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development",
        description="development: the embedded stack, demos and tests (dev secrets allowed); "
        "production: docker-compose.yml (the dev API key and token secret are refused at start)",
    )

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    task_queue: str = Field("ringflow", description="Task queue of ringflow's worker")
    temporal_ui_port: int = Field(8233, description="Port of the Temporal UI (embedded stack)")
    temporal_ui_url: str = Field(
        "http://127.0.0.1:8233", description="Base URL of the Temporal UI, for links"
    )

    # PostgreSQL
    database_url: str = Field(
        "",
        description="PostgreSQL DSN of ringflow's database "
        "(unset: postgresql://postgres@127.0.0.1:<postgres_port>/ringflow, the embedded one)",
    )
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)

    # API
    api_host: str = Field("127.0.0.1", description="Address the API listens on")
    api_port: int = Field(8080, description="Port the API listens on")
    api_url: str = Field(
        "",
        description="Base URL clients (the CLI, device agents) use for the API "
        "(unset: http://<api_host>:<api_port>, 127.0.0.1 for 0.0.0.0)",
    )
    api_key: str = Field(
        DEV_API_KEY,
        min_length=8,
        description="Bootstrap API key (X-API-Key header): the default tenant's platform administrator",
    )
    token_secret: str = Field(DEV_TOKEN_SECRET, min_length=32, description="HS256 secret of party tokens")
    max_body_bytes: int = Field(64 * 1024, description="Largest request body accepted, bytes")
    # Admission control (api/admission.py; issue 4 item 5). One worker sets up ~10 calls/s
    # (bench/RESULTS.md, run E): set the rate to about 10 x workers / API processes to shed a
    # burst. Off by default: the sustainable rate is the deployment's (workers, Temporal).
    admission_rate_per_s: float = Field(
        0.0,
        ge=0,
        description="New calls per second each API process admits before 429 + Retry-After; 0: unlimited",
    )
    admission_burst: int = Field(
        10, ge=1, description="New calls an API process admits at once above the rate (token bucket size)"
    )
    # Issue 9 item 5: one tenant's burst must not starve another's calls. Each tenant's new calls
    # first take a token of the tenant's own bucket (then of the process-wide one above), so a
    # tenant above its share is refused (429) before it can use up what the others need.
    admission_tenant_rate_per_s: float = Field(
        0.0,
        ge=0,
        description="New calls per second each API process admits per tenant before 429; 0: no limit",
    )
    admission_tenant_burst: int = Field(
        10, ge=1, description="New calls an API process admits at once per tenant above its rate"
    )

    # Call defaults (reference: troubleshooting guide section 3, ring timeout 60 s)
    ring_timeout_s: float = Field(60.0, gt=0, description="Default ring timeout per listener, seconds")
    join_timeout_s: float = Field(30.0, gt=0, description="Time a party has to join the room, seconds")
    time_limit_s: float = Field(
        3600.0, gt=0, description="Default maximum talk duration (timeLimit), seconds"
    )

    # Media bridge (media/; issue 3). Addresses like mediasoup's listenIps/announcedIp.
    media_enabled: bool = Field(
        False, description="Calls require media: join/talk follow the bridge's peer connections"
    )
    media_host: str = Field("127.0.0.1", description="Address the media bridge's control API listens on")
    media_port: int = Field(8090, description="Port of the media bridge's control API")
    media_url: str = Field("http://127.0.0.1:8090", description="Base URL of the media bridge's control API")
    media_listen_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"], description="Addresses the bridge gathers ICE candidates on"
    )
    media_announced_ip: str | None = Field(
        None, description="Address announced in the bridge's candidates (None: the listen address)"
    )
    media_allowed_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="Remote ICE candidates outside these networks are ignored",
    )
    media_ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs without credentials, for the bridge and the parties "
        "(none: host candidates only)",
    )
    # TURN with ephemeral credentials (ringflow/ice.py; draft-uberti-behave-turn-rest, coturn
    # use-auth-secret). The TTL must outlive the longest call: coturn checks the credential on
    # every Refresh/CreatePermission of an allocation, so an expired one ends the relay mid-call;
    # 86400 is the draft's recommended lifetime, and parties fetch a fresh one per connection.
    turn_urls: list[str] = Field(
        default_factory=list,
        description="TURN URLs given with ephemeral credentials to the parties and the bridge, e.g. "
        "turn:turn.example.com:3478?transport=udp (none: no TURN)",
    )
    turn_secret: str = Field(
        "", description="Shared secret of the TURN server (coturn static-auth-secret); empty: no credentials"
    )
    turn_ttl_s: float = Field(
        86400.0,
        ge=60,
        description="Lifetime of a TURN credential, seconds; longer than the longest call (time_limit_s)",
    )
    # An SFU reachable at its announced address needs no relay of its own (mediasoup and LiveKit
    # run without one): a bridge relay is one more coturn allocation per peer, and an unreachable
    # TURN server makes aioice wait seconds for it while an offer is being answered.
    media_bridge_turn: bool = Field(
        False,
        description="The bridge allocates TURN relays itself too (only when clients cannot reach its "
        "announced address); the parties get TURN credentials either way",
    )
    media_connect_timeout_s: float = Field(
        10.0, gt=0, description="Time a peer has to reach 'connected' after its offer, seconds"
    )
    media_disconnect_grace_s: float = Field(
        5.0, gt=0, description="Time a joined peer that sent media may send none before media_lost, seconds"
    )
    media_request_timeout_s: float = Field(
        15.0, gt=0, description="How long the API waits for the bridge to answer an offer, seconds"
    )
    media_recordings_dir: Path = Field(
        Path(".data/recordings"), description="Where the bridge writes recordings (policy record_media)"
    )
    # Media at scale (issue 13; media/node.py, store/media_nodes.py, docs/media.md "Scale").
    media_processes: int = Field(
        0,
        ge=0,
        description="Media processes of a bridge node, each a whole bridge on a core (0: one per core)",
    )
    media_process_capacity: int = Field(
        200,
        gt=0,
        description="Rooms one media process accepts; a node's capacity is this times its processes",
    )
    media_register: bool = Field(
        False,
        description="The bridge node registers itself and its load in PostgreSQL (media_nodes), so that "
        "several nodes share the rooms; off: the API and the workers use media_url",
    )
    media_node_id: str | None = Field(
        None, description="This bridge node's id in the registry (None: <hostname>:<media_port>)"
    )
    media_node_url: str | None = Field(
        None,
        description="The control API URL other services reach this node at (None: media_url; 'auto': "
        "http://<this host's address>:<media_port>, for `docker compose --scale`)",
    )
    media_node_heartbeat_s: float = Field(
        1.0, gt=0, description="How often a registered bridge node reports its load, seconds"
    )
    media_node_expiry_s: float = Field(
        3.0, gt=0, description="A node silent this long is dead: its rooms move to another node, seconds"
    )
    media_monitor: bool = Field(
        True, description="Workers watch the registered bridge nodes and move the rooms of dead ones"
    )
    action_ack_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long an in-call action (open door) waits for the device's ack, seconds",
    )

    # Worker
    worker_sticky_timeout_s: float = Field(
        3.0,
        gt=0,
        description="How long a crashed worker's calls wait before another worker takes them, seconds",
    )
    worker_max_cached_workflows: int = Field(
        9000,
        ge=0,
        description="Workflows a worker keeps in memory (one per live call, ~100 KiB each: "
        "bench/RESULTS.md run E; 9,000 keep a worker under 1 GiB); beyond it, a call's next "
        "event first replays its history",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        8,
        ge=2,
        description="Workflow tasks a worker runs at once (the SDK's default is 100). Few: a "
        "call's first task runs its local activities (start, ring) and its ring timer only "
        "starts when the task completes, so tasks must not share the worker with a hundred "
        "others during a burst; the rest wait on the server, before their workflow time starts",
    )

    # Observability (docs/metrics.md; issue 12 items 2 and 3)
    worker_metrics_address: str = Field(
        "127.0.0.1:9464",
        description="host:port of the worker's Prometheus endpoint (/metrics: the Temporal SDK's "
        "metrics and the call metrics); empty: none",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP base URL of a trace collector (e.g. http://otel-collector:4318; spans "
        "go to <url>/v1/traces); unset: no traces",
    )

    # Webhooks (issue 9; docs/webhooks.md): the dispatcher in every worker process
    webhook_dispatcher: bool = Field(True, description="Run the webhook dispatcher in the worker")
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=60, description="Total time a webhook endpoint has to answer one delivery, seconds"
    )
    webhook_max_in_flight: int = Field(
        4, ge=1, le=64, description="Deliveries in flight at once per endpoint, per worker process"
    )
    webhook_poll_s: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for due retries (NOTIFY: sooner), seconds"
    )
    webhook_retry_base_s: float = Field(
        5.0, gt=0, description="Backoff after a first failed attempt (doubling, jittered), seconds"
    )
    webhook_retry_max_s: float = Field(3600.0, gt=0, description="Longest backoff between attempts, seconds")
    webhook_retry_window_s: float = Field(
        86400.0, gt=0, description="How long a delivery is retried before it fails for good, seconds"
    )
    webhook_disable_after_s: float = Field(
        86400.0,
        ge=0,
        description="An endpoint failing this long (no success) with at least webhook_disable_min_failures "
        "consecutive failed attempts is disabled, seconds",
    )
    webhook_disable_min_failures: int = Field(
        10, ge=1, description="Consecutive failed attempts before an endpoint may be disabled"
    )
    webhook_allowed_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="Where webhook URLs may point (checked on registration and on every delivery): CIDR "
        "networks, or 'public' (any globally routable address); host names are accepted only when one "
        "of them is public",
    )
    webhook_secret_overlap_s: float = Field(
        86400.0, ge=0, description="How long a rotated-out webhook secret still signs too, seconds"
    )

    # Embedded stack
    data_dir: Path = Field(Path(".data"), description="Where the embedded stack keeps its state")
    postgres_port: int = Field(5433, description="Port of the embedded PostgreSQL")

    def derived(self, name: str) -> str:
        """The value setting ``name`` (one of :data:`DERIVED_SETTINGS`) has when not given:
        ``database_url`` on the embedded PostgreSQL's port, ``api_url`` on the API's host
        (a wildcard as loopback, :func:`client_host`) and port."""
        if name == "database_url":
            return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/ringflow"
        if name == "api_url":
            return f"http://{client_host(self.api_host)}:{self.api_port}"
        raise KeyError(name)

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Self:
        """Issue 9: a production process (``environment=production``, docker-compose.yml) refuses
        the embedded stack's default secrets, which anyone can read in this repository (the
        full-stack FastAPI template's ``_enforce_non_default_secrets``). Raises ValueError (a
        pydantic ValidationError naming the settings to set)."""
        if self.environment != "production":
            return self
        defaults = [
            f"RINGFLOW_{name.upper()}"
            for name, dev in (("api_key", DEV_API_KEY), ("token_secret", DEV_TOKEN_SECRET))
            if getattr(self, name) == dev
        ]
        if defaults:
            raise ValueError(
                f"{' and '.join(defaults)} {'is' if len(defaults) == 1 else 'are'} the development "
                "default, refused in production (RINGFLOW_ENVIRONMENT=production): set your own secrets "
                "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self

    @model_validator(mode="after")
    def _derive(self) -> Self:
        """Fill the :data:`DERIVED_SETTINGS` that were not given (unset or empty)."""
        for name in DERIVED_SETTINGS:
            if not getattr(self, name):
                setattr(self, name, self.derived(name))
        return self

    def model_copy(self, *, update: Any = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied (not validated, as pydantic's). A derived setting
        that ``update`` does not set and that has its derived value follows the copy's ports
        (``isolated_settings`` moves ``postgres_port`` and ``api_port``)."""
        copy = super().model_copy(update=update, deep=deep)
        for name in DERIVED_SETTINGS:
            if name not in (update or {}) and getattr(self, name) == self.derived(name):
                setattr(copy, name, copy.derived(name))
        return copy

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        """``temporal_address`` split into (host, port)."""
        host, _, port = self.temporal_address.rpartition(":")
        return host, int(port)


def client_host(host: str) -> str:
    """The address a client on this machine uses to reach a server listening on ``host``:
    a wildcard (``0.0.0.0``, ``::``, empty) is 127.0.0.1 (or ``[::1]``); an IPv6 literal
    gets brackets for a URL."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_or_exit() -> Settings:
    """:func:`get_settings` for a program's entry point (``python -m media.server``): invalid
    settings (a production start with a development secret among them) print one line
    ``ringflow: invalid settings: ...`` on stderr and exit with status 1, no traceback."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as e:
        raise SystemExit(f"ringflow: invalid settings: {settings_error(e)}") from None


def settings_error(error: Any) -> str:
    """A pydantic ``ValidationError`` of :class:`Settings` as one line: ``RINGFLOW_NAME: what``
    per bad field, a model-level rule's message as it is."""
    parts = []
    for err in error.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        name = "_".join(str(p) for p in err["loc"]).upper()
        parts.append(f"RINGFLOW_{name}: {msg}" if name else msg)
    return "; ".join(parts)

"""Settings: every address, port, secret and default timer, from ``RINGFLOW_*`` environment variables.

One env prefix (``RINGFLOW_``) for the embedded stack, the docker-compose
services and the tests, so the same code runs against an external Temporal
cluster and PostgreSQL. Durations are seconds (float).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """ringflow's configuration; see the field descriptions (also ``ringflow settings``)."""

    model_config = SettingsConfigDict(env_prefix="RINGFLOW_", env_file=".env", extra="ignore")

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
        "postgresql://postgres@127.0.0.1:5433/ringflow", description="PostgreSQL DSN of ringflow's database"
    )
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)

    # API
    api_host: str = Field("127.0.0.1", description="Address the API listens on")
    api_port: int = Field(8080, description="Port the API listens on")
    api_key: str = Field("dev-api-key", min_length=8, description="Backend API key (X-API-Key header)")
    token_secret: str = Field(
        "dev-token-secret-change-me-0123456789", min_length=32, description="HS256 secret of party tokens"
    )
    max_body_bytes: int = Field(64 * 1024, description="Largest request body accepted, bytes")

    # Call defaults (reference: troubleshooting guide section 3, ring timeout 60 s)
    ring_timeout_s: float = Field(60.0, gt=0, description="Default ring timeout per listener, seconds")
    join_timeout_s: float = Field(30.0, gt=0, description="Time a party has to join the room, seconds")
    time_limit_s: float = Field(
        3600.0, gt=0, description="Default maximum talk duration (timeLimit), seconds"
    )

    # Embedded stack
    data_dir: Path = Field(Path(".data"), description="Where the embedded stack keeps its state")
    postgres_port: int = Field(5433, description="Port of the embedded PostgreSQL")

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        """``temporal_address`` split into (host, port)."""
        host, _, port = self.temporal_address.rpartition(":")
        return host, int(port)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

"""``python -m ringflow.stack.serve_api``: the API under uvicorn with the settings from ``RINGFLOW_*``.

Listens on ``api_host``:``api_port``; SIGTERM/SIGINT finish open requests and run
the app's shutdown (pool and Temporal client closed) before exiting.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ringflow.settings import Settings, get_settings

_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Masks ``token=...`` query parameters (party bearer tokens: the push WebSocket and
    ``/app?token=``) in uvicorn's access and connection log lines, which would otherwise
    write them in clear to the API's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN.sub(r"\1***", record.msg)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`RedactTokens` on every handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config


def serve(settings: Settings, log_level: str = "info") -> None:
    """Run the API in this process until SIGTERM/SIGINT. Raises ``SystemExit`` (uvicorn)
    when the port is taken or the app's startup fails (e.g. PostgreSQL unreachable)."""
    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=log_level,
        log_config=log_config(),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    serve(get_settings())

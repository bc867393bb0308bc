"""``python -m ringflow.stack.serve_api``: the API under uvicorn with the settings from ``RINGFLOW_*``.

Listens on ``api_host``:``api_port``; SIGTERM/SIGINT finish open requests and run
the app's shutdown (pool and Temporal client closed) before exiting.
"""

from __future__ import annotations

import uvicorn

from ringflow.settings import Settings, get_settings


def serve(settings: Settings, log_level: str = "info") -> None:
    """Run the API in this process until SIGTERM/SIGINT. Raises ``SystemExit`` (uvicorn)
    when the port is taken or the app's startup fails (e.g. PostgreSQL unreachable)."""
    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    serve(get_settings())

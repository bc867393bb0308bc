"""``ringflow``: the command line (typer). Every command reads its settings from ``RINGFLOW_*``
environment variables (and ``.env``); ``ringflow settings`` shows the effective ones.

Heavy modules are imported inside the commands, so ``ringflow --help`` is quick and a
command works even while another part of the project is missing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from ringflow.settings import Settings, get_settings

app = typer.Typer(
    name="ringflow",
    help="Durable call routing for door stations, access panels and campus phones, on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)
directory_app = typer.Typer(help="The directory: buildings, units, residents, devices.", no_args_is_help=True)
app.add_typer(directory_app, name="directory")

SECRET_SETTINGS = {"api_key", "token_secret"}
"""Settings that ``ringflow settings`` masks unless ``--show-secrets``."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"ringflow: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="State directory (default: RINGFLOW_DATA_DIR, .data)")
    ] = None,
) -> None:
    """Run the embedded stack in the foreground until Ctrl-C: PostgreSQL, the Temporal dev
    server and UI, the worker and the API, on the ports of the settings."""
    from ringflow.stack.embedded import run_until_signal

    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    try:
        asyncio.run(run_until_signal(settings))
    except RuntimeError as err:
        raise _fail(str(err)) from None


@app.command()
def worker() -> None:
    """Run one Temporal worker (workflows and activities) until SIGTERM / Ctrl-C."""
    from ringflow.worker import main

    main()


@app.command()
def api() -> None:
    """Serve the API (uvicorn) on RINGFLOW_API_HOST:RINGFLOW_API_PORT until SIGTERM / Ctrl-C."""
    from ringflow.stack.serve_api import serve

    serve(get_settings())


@app.command()
def migrate() -> None:
    """Create the database of RINGFLOW_DATABASE_URL if missing and apply pending migrations."""
    from ringflow.stack.database import prepare_database

    settings = get_settings()
    try:
        asyncio.run(prepare_database(settings.database_url))
    except OSError as err:
        raise _fail(f"PostgreSQL unreachable at {settings.database_url}: {err}") from None
    typer.echo(f"migrated {settings.database_url}")


@directory_app.command("load")
def directory_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Building YAML file")],
) -> None:
    """Load (create or update) one building from FILE: units, residents, devices, groups,
    authorizations and policies."""
    from ringflow.directory_load import load_building, read_building
    from store.db import create_pool

    building = read_building(file)
    settings = get_settings()

    async def load() -> dict[str, int]:
        pool = await create_pool(settings.database_url, 1, 2)
        try:
            return await load_building(pool, building)
        finally:
            await pool.close()

    counts = asyncio.run(load())
    typer.echo(f"loaded {file}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


def _masked(name: str, value: object, show_secrets: bool) -> object:
    return "********" if name in SECRET_SETTINGS and not show_secrets else value


@app.command("settings")
def show_settings(
    show_secrets: Annotated[bool, typer.Option(help="Print secrets instead of ********")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of env lines")] = False,
) -> None:
    """Print the effective settings as RINGFLOW_* lines (env-file syntax) with descriptions."""
    settings = get_settings()
    values = {k: _masked(k, v, show_secrets) for k, v in settings.model_dump(mode="json").items()}
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    for name, field in Settings.model_fields.items():
        value = values[name]
        line = f"RINGFLOW_{name.upper()}={value if isinstance(value, str) else json.dumps(value)}"
        typer.echo(f"{line:<64} # {field.description}" if field.description else line)


@app.command()
def demo(
    ring_timeout: Annotated[
        float, typer.Option(min=0.5, help="Ring timeout per resident for the demo call, seconds")
    ] = 4.0,
    keep_stack: Annotated[
        bool, typer.Option(help="Leave the embedded stack running after the demo (Ctrl-C stops it)")
    ] = False,
) -> None:
    """Run the demo end to end on a fresh embedded stack: a lobby door calls unit 101."""
    from ringflow import demo as demo_module

    result = demo_module.main(ring_timeout_s=ring_timeout, keep_stack=keep_stack)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    raise typer.Exit(code=int(result or 0))


def main() -> None:
    """Entry point (same as the ``ringflow`` script)."""
    app()


if __name__ == "__main__":
    main()

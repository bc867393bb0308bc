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
device_app = typer.Typer(
    help="Device agents: a door station on ringflow, with real media.", no_args_is_help=True
)
app.add_typer(device_app, name="device")

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


@device_app.command("run")
def device_run(
    sn: Annotated[str, typer.Option(help="The device's serial number, e.g. LOBBY-1")],
    api: Annotated[str, typer.Option(help="Base URL of the ringflow API")] = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(help="The device's bearer token (POST /v1/tokens)")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Backend API key: get the device's token with it (POST /v1/tokens)")
    ] = None,
    call: Annotated[str | None, typer.Option(help="Call this unit once at start, e.g. 101")] = None,
    callee: Annotated[
        list[str] | None,
        typer.Option(help="Instead of --call: call this party (user:ID or device:SN; repeat to hunt)"),
    ] = None,
    room_type: Annotated[str, typer.Option(help="Room type of --call: video or voice")] = "video",
    audio: Annotated[
        Path | None, typer.Option(help="Send audio from this file (WAV; looped) instead of a tone")
    ] = None,
    video: Annotated[
        Path | None, typer.Option(help="Send video from this file (looped) instead of a test pattern")
    ] = None,
    tone_hz: Annotated[float, typer.Option(min=20, max=20000, help="Frequency of the tone, Hz")] = 440.0,
    no_video: Annotated[
        bool, typer.Option("--no-video", help="Send no video (an audio-only door station)")
    ] = False,
    size: Annotated[str, typer.Option(help="Test pattern size WIDTHxHEIGHT")] = "640x480",
    fps: Annotated[float, typer.Option(min=1, max=60, help="Test pattern frames per second")] = 15.0,
    auto_answer: Annotated[
        bool | None,
        typer.Option(help="Answer calls placed to the device (default: as the directory says)"),
    ] = None,
    door_command: Annotated[
        str | None, typer.Option(help="Run this command to open the door (exit 0 = opened); default: log it")
    ] = None,
    listen_ip: Annotated[
        list[str] | None,
        typer.Option(
            help="Address to gather ICE host candidates on (repeat; default RINGFLOW_MEDIA_LISTEN_IPS)"
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="With --call: exit when that call ends")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log aiortc's details too")] = False,
) -> None:
    """Run a door station until Ctrl-C: on the push channel with the device's token, it calls
    --call (joining the call's media room at once with its audio and video), performs and
    acknowledges "open door", and answers calls placed to it when auto_answer is set."""
    import logging
    import signal

    from ringflow.agent import CommandDoor, DeviceAgent, MediaSpec, run_device

    if (token is None) == (api_key is None):
        raise typer.BadParameter("give exactly one of --token and --api-key", param_hint="--token/--api-key")
    if room_type not in ("video", "voice"):
        raise typer.BadParameter(f"{room_type!r} is not video or voice", param_hint="--room-type")
    if call is not None and callee:
        raise typer.BadParameter("give --call or --callee, not both", param_hint="--call/--callee")
    if once and call is None and not callee:
        raise typer.BadParameter("--once needs --call or --callee", param_hint="--once")
    from ringflow.contracts.common import Party

    try:
        callees = [Party.parse_key(key) for key in callee or []]
    except ValueError as e:
        raise typer.BadParameter(f"not user:ID or device:SN: {e}", param_hint="--callee") from None
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise typer.BadParameter(f"{size!r} is not WIDTHxHEIGHT", param_hint="--size")
    media = MediaSpec(
        audio=str(audio) if audio else "tone",
        video=None if no_video else (str(video) if video else "pattern"),
        tone_hz=tone_hz,
        width=int(width),
        height=int(height),
        fps=fps,
    )
    try:
        media.check()
    except (OSError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--audio/--video/--size") from None
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not verbose:
        for noisy in ("aioice", "aiortc", "httpx", "websockets"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from media.network import use_listen_ips

    try:  # host candidates where the bridge may reach us (aioice skips loopback by default)
        use_listen_ips(listen_ip or get_settings().media_listen_ips)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--listen-ip") from None
    door = CommandDoor(door_command) if door_command else None

    async def main() -> int:
        from ringflow.client import ApiError

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if api_key is not None:
                agent = await DeviceAgent.from_api_key(
                    api, sn, api_key, auto_answer=auto_answer, media=media, door=door
                )
            else:
                assert token is not None
                agent = DeviceAgent(api, sn, token, media=media, door=door, auto_answer=auto_answer)
            return await run_device(
                agent, call=call, callees=callees, room_type=room_type, once=once, stop=stop
            )
        except ApiError as e:
            typer.secho(f"ringflow: {e}", fg=typer.colors.RED, err=True)
            return 1
        except (OSError, TimeoutError) as e:
            typer.secho(f"ringflow: cannot reach {api}: {e!r}", fg=typer.colors.RED, err=True)
            return 1

    raise typer.Exit(code=asyncio.run(main()))


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

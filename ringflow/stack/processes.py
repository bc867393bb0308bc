"""Child processes of the embedded stack: started, SIGTERMed, SIGKILLed and restarted by name.

Each child runs in its own session (process group), so a Ctrl-C at the terminal
reaches only the parent, which then stops the children in order (API, worker,
Temporal, PostgreSQL). On Linux each child also gets a parent-death signal, so
a parent killed with SIGKILL leaves no orphan behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send ``sig`` to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


@dataclass
class ChildProcess:
    """One named child process with its output appended to ``log_path``.

    ``argv``: the command; ``env``: its whole environment; ``on_parent_death``:
    the signal the child gets if this process dies without stopping it (SIGTERM
    for ringflow's own processes so they shut down gracefully, SIGKILL for servers).
    The child is started from the calling thread, which must live as long as the
    child (the parent-death signal is tied to the thread): call from the main thread.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    on_parent_death: signal.Signals = signal.SIGTERM
    cwd: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Start the process (no-op if it runs). Raises ``OSError`` if ``argv[0]`` cannot run."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(self.on_parent_death),
            )

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once exited (negative: killed by that signal), else None."""
        return None if self._proc is None else self._proc.poll()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit status."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the process and reap it (fault injection: no cleanup runs)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float = 15.0) -> None:
        """``stop(timeout)`` then ``start()``."""
        self.stop(timeout)
        self.start()

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def python_module(module: str, *args: str) -> list[str]:
    """``argv`` running ``python -m module args`` with this interpreter (the venv's)."""
    return [sys.executable, "-m", module, *args]


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, with unbuffered Python output for live logs."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env

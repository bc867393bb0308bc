"""What the browser tests share: the browsers they need, and running a scenario module in a
network namespace of its own (``unshare --net``), so that a browser and WebRTC can only use
the interfaces the scenario creates (loopback, or a test address inside the namespace).

Used by ``tests/test_browser.py`` (the resident web app in Chromium),
``tests/test_browser_firefox.py`` (the same in Firefox ESR) and ``tests/test_docs_browser.py``
(``/docs`` and ``/redoc`` offline).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
"""Debian's Chromium and its WebDriver (``./run test`` installs both as root)."""


def require_chromium() -> None:
    """Fail the test, saying how to install them, when Chromium or chromedriver is missing
    (a missing browser is a failure, never a skip)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install Debian's chromium and chromium-driver "
            "(`apt-get install chromium chromium-driver`; `./run test` does it as root)"
        )


def run_in_network_namespace(
    module: str, tmp_path: Path, *args: str, what: str, timeout_s: float
) -> dict[str, Any]:
    """Run ``python -m MODULE TMP_PATH ARGS...`` in a new network namespace (as root; as
    another user with ``--map-root-user``), its output in ``TMP_PATH/scenario.log``, and
    return the ``TMP_PATH/report.json`` it writes (printed: shown with ``pytest -s``).

    ``what`` names the scenario in failures; ``timeout_s``: how long it may run, seconds
    (then its process group is killed). Fails the test with the log's tail when ``unshare``
    is missing, a namespace cannot be made, or the scenario fails or overruns.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("`unshare` (util-linux) is missing: the browser test runs in its own network namespace")
    cmd = [unshare, "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    cmd += ["--", sys.executable, "-m", module, str(tmp_path), *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_path = tmp_path / "scenario.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
    if rc is None:
        pytest.fail(f"the {what} scenario did not finish in {timeout_s:.0f} s:\n{tail}")
    if rc != 0 and "unshare" in tail and "Operation not permitted" in tail:
        pytest.fail(f"cannot create a network namespace (root or user namespaces needed):\n{tail}")
    assert rc == 0, f"the {what} scenario failed (exit {rc}), log {log_path}:\n{tail}"
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    print(json.dumps(report, indent=1))
    return report

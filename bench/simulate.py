"""How long ``ringflow simulate`` takes per scenario (issue 10 item 5: "a second or two").

Scenarios on ``examples/building.yaml``: the README's (``examples/scenario-night.yaml``: quiet
hours, six skips, the fallback answers and talks), ``examples/scenario-edit.yaml`` (away, a
pass, a policy edit, an answer) and ``examples/scenario-busy.yaml`` (a busy line, a reject, a
caller who gives up).

Per scenario, ``--runs`` times (default 3):

- ``cli``: the whole command as a user runs it (``python -m ringflow.cli simulate B S`` in a
  subprocess): wall seconds, and CPU seconds of the command and its children (the Python
  process and the Java test server: ``RUSAGE_CHILDREN``);
- ``run``: :func:`ringflow.simulation.runner.simulate` alone, in this process, on a fresh
  test server each time (start and shutdown included): wall seconds and this process's CPU
  seconds (the test server's own CPU is not in it).

``python -m bench.simulate [--runs N]``; prints one table (medians).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ringflow.directory_load import read_building
from ringflow.simulation.runner import simulate
from ringflow.simulation.scenario import read_scenario

ROOT = Path(__file__).resolve().parent.parent
BUILDING = ROOT / "examples" / "building.yaml"
SCENARIOS = ["scenario-night.yaml", "scenario-edit.yaml", "scenario-busy.yaml"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_run(scenario: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one ``ringflow simulate`` command."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ringflow.cli", "simulate", str(BUILDING), str(scenario)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"{scenario.name}: exit {done.returncode}: {done.stderr.strip()}")
    return wall, cpu


def in_process(scenario: Path) -> tuple[float, float]:
    """(wall s, this process's CPU s) of :func:`simulate` on a fresh test server."""
    building, played = read_building(BUILDING), read_scenario(scenario)
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(simulate(building, played))
    return time.perf_counter() - t0, time.process_time() - cpu0


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--runs", type=int, default=3)
    runs = args.parse_args().runs
    load = os.getloadavg()
    cpus = os.cpu_count()
    print(f"# bench.simulate: {runs} runs per scenario, {cpus} CPUs, load {load[0]:.2f} {load[1]:.2f}")
    print(f"{'scenario':<22} {'cli wall s':>10} {'cli cpu s':>10} {'run wall s':>11} {'run cpu s':>10}")
    for name in SCENARIOS:
        path = ROOT / "examples" / name
        cli = [cli_run(path) for _ in range(runs)]
        run = [in_process(path) for _ in range(runs)]
        med = [statistics.median(x[i] for x in rows) for rows in (cli, run) for i in (0, 1)]
        print(f"{name:<22} {med[0]:>10.2f} {med[1]:>10.2f} {med[2]:>11.2f} {med[3]:>10.2f}")


if __name__ == "__main__":
    main()

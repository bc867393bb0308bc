"""Run every benchmark, one after the other, each in its own process with its own
embedded stack (or the external one given): setup latency, escalation, ring timer,
capacity, overload. Tables go to stdout; ``--json-out`` collects every JSON result.

``python -m bench.run_all [--quick] [--only setup_latency,ring_timer] [--json-out FILE]``
Other options (``--api-url`` ...) are passed to every benchmark.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS = ["setup_latency", "escalation", "ring_timer", "capacity", "overload"]
"""Run order; each is ``bench.<name>``."""

TIMEOUT_S = 3600.0
"""Longest one benchmark may run, seconds."""


def main() -> int:
    """Run the benchmarks; returns 0 when every one exited 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    p.add_argument("--json-out", help="append every benchmark's JSON result to this file")
    args, rest = p.parse_known_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    failed: list[str] = []
    for name in names:
        cmd = [sys.executable, "-m", f"bench.{name}", *rest]
        if args.quick:
            cmd.append("--quick")
        if args.json_out:
            cmd += ["--json-out", args.json_out]
        print(f"\n## {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        try:
            code = subprocess.run(cmd, timeout=TIMEOUT_S, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
        print(f"({name}: exit {code}, {time.monotonic() - t0:.0f} s)", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

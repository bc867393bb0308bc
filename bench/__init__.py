"""ringflow's benchmark suite (issue 4): call setup latency, escalation throughput,
ring-timer precision, capacity and overload, each against a bare-Temporal baseline
measured in the same run. ``python -m bench.run_all --quick``; figures in
``bench/RESULTS.md``.
"""

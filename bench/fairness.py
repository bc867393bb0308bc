"""Benchmark: fair under load (issue 9 item 5). Two tenants on one stack; one bursts.

The embedded stack's API runs with the process-wide admission bucket (``--global-rate``
calls/s, default 10: what one worker sets up on this 2-core machine, ``bench/RESULTS.md`` run
E) and a bucket per tenant (``--tenant-rate``, default 5: half the capacity each; 0 = no
per-tenant buckets, the process-wide one only). Tenant ``quiet`` places ``--quiet-rate`` calls/s
(default 2) for ``--duration`` seconds (default 10; ``--quick`` 6), first alone, then while
tenant ``loud`` bursts at ``--factor`` (5) x its share (``--tenant-rate``, or half of
``--global-rate`` when that is 0). Every call rings a unit of its own with one resident that
never answers; the quiet tenant's residents are connected.

Reported: the quiet tenant's setup latency (POST -> ``incoming_call`` at the resident's socket)
p50/p99/max alone and with the burst, its 429s (a starved tenant is refused), and the loud
tenant's statuses (after ``WARMUP_S`` of unmeasured quiet calls). Fair: the quiet p99 with the
burst is that without it, within noise, and the quiet tenant gets no 429.

``python -m bench.fairness [--quick] [--global-rate R] [--tenant-rate R] [--quiet-rate R]
[--factor F] [--duration S]``
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import (
    Bench,
    PushWaiter,
    call_body,
    close_all,
    emit,
    info,
    load_directory,
    open_bench,
    paced,
    parser,
    summary_ms,
    table,
    user,
)
from ringflow.client import Backend, PartyClient
from ringflow.contracts.tenancy import Scope
from store import tenants as tenant_store

RING_TIMEOUT_S = 5.0
"""Ring timeout of every call, seconds (a resident is rung once: each call has its own unit)."""

WARMUP_S = 3.0
"""The quiet tenant's calls before the measured ones (not reported), seconds."""

PUSH_TIMEOUT_S = 60.0
"""A push not at the socket this many seconds after the POST counts as lost."""


async def tenant_backend(bench: Bench, tenant: str) -> Backend:
    """Create ``tenant`` and a ``calls:write`` key of it; its :class:`Backend`."""
    await tenant_store.create_tenant(bench.pool, tenant, tenant.title())
    _, key = await tenant_store.create_key(bench.pool, tenant, [Scope.CALLS_WRITE, Scope.CALLS_READ], "bench")
    return Backend(bench.api_url, key)


async def connect(
    bench: Bench, backend: Backend, user_ids: list[str], waiter: PushWaiter
) -> dict[str, PartyClient]:
    """A push socket for each of the tenant's ``user_ids`` (tokens from its ``backend``)."""
    clients: dict[str, PartyClient] = {}
    sem = asyncio.Semaphore(20)

    async def one(uid: str) -> None:
        async with sem:
            token = await backend.token(user(uid))
            client = PartyClient(bench.api_url, user(uid), token, on_message=waiter.handler)  # type: ignore[arg-type]
            await client.start(timeout=30.0)
            clients[uid] = client

    await asyncio.gather(*(one(u) for u in user_ids))
    return clients


class Load:
    """One tenant's open-loop calls: ``units`` (unit id, resident) are used once each."""

    def __init__(self, name: str, backend: Backend, devices: list[str], units: list[tuple[str, str]]) -> None:
        self.name = name
        self.backend = backend
        self.devices = devices
        self.units = units
        self.next = 0

    async def run(
        self, rate: float, duration: float, waiter: PushWaiter | None, tag: str
    ) -> tuple[list[float], dict[str, int], int]:
        """``rate`` calls/s for ``duration`` s; returns (setup latencies s, statuses, pushes lost)."""
        setup: list[float] = []
        statuses: dict[str, int] = {}
        lost = 0

        async def one(i: int) -> None:
            nonlocal lost
            unit_id, _ = self.units[self.next]
            self.next += 1
            call_id = f"{self.name}-{tag}-{i}"
            fut = waiter.expect(call_id, "incoming_call") if waiter else None
            t0 = time.monotonic()
            try:
                r = await self.backend.place_call(
                    call_body(self.devices[i % len(self.devices)], unit_id, RING_TIMEOUT_S), call_id
                )
            except Exception as e:
                statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                return
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            if r.status_code >= 300 or fut is None:
                return
            try:
                msg = await asyncio.wait_for(fut, PUSH_TIMEOUT_S)
                setup.append(msg.received_at - t0)
            except TimeoutError:
                lost += 1

        await paced(rate, duration, one, grace_s=PUSH_TIMEOUT_S + 5)
        return setup, statuses, lost


async def run(args: Any) -> dict[str, Any]:
    duration = args.duration or (6.0 if args.quick else 10.0)
    share = args.tenant_rate or args.global_rate / 2
    loud_rate = share * args.factor
    n_quiet = round(args.quiet_rate * (duration * 2 + WARMUP_S)) + 4
    n_loud = round(loud_rate * duration) + 2
    async with open_bench(
        "fairness",
        args,
        admission_rate_per_s=args.global_rate,
        admission_burst=max(1, round(args.global_rate)),
        admission_tenant_rate_per_s=args.tenant_rate,
        admission_tenant_burst=max(1, round(args.tenant_rate)),
    ) as bench:
        quiet_backend = await tenant_backend(bench, "quiet")
        loud_backend = await tenant_backend(bench, "loud")
        quiet_dir = await load_directory(bench, n_quiet, 1, ring_timeout_s=RING_TIMEOUT_S, tenant="quiet")
        loud_dir = await load_directory(bench, n_loud, 1, ring_timeout_s=RING_TIMEOUT_S, tenant="loud")
        waiter = PushWaiter()
        quiet_units = [(u, rs[0]) for u, rs in quiet_dir.units.items()]
        clients = await connect(bench, quiet_backend, [r for _, r in quiet_units], waiter)
        info(f"[fairness] {len(clients)} quiet residents connected")
        quiet = Load("quiet", quiet_backend, quiet_dir.devices, quiet_units)
        loud = Load("loud", loud_backend, loud_dir.devices, [(u, rs[0]) for u, rs in loud_dir.units.items()])
        try:
            await quiet.run(args.quiet_rate, WARMUP_S, waiter, "warmup")  # first calls: caches, pools
            info(f"[fairness] quiet alone: {args.quiet_rate:g} calls/s for {duration:g} s ...")
            alone, alone_st, alone_lost = await quiet.run(args.quiet_rate, duration, waiter, "alone")
            await asyncio.sleep(RING_TIMEOUT_S + 2)
            info(
                f"[fairness] quiet {args.quiet_rate:g}/s while loud bursts at {loud_rate:g}/s "
                f"({args.factor:g} x {share:g}) ..."
            )
            (burst, burst_st, burst_lost), (_, loud_st, _) = await asyncio.gather(
                quiet.run(args.quiet_rate, duration, waiter, "burst"),
                loud.run(loud_rate, duration, None, "burst"),
            )
        finally:
            await close_all(clients)
            await quiet_backend.aclose()
            await loud_backend.aclose()
    rows = [
        {
            "what": "quiet alone: POST -> push",
            **summary_ms(alone),
            "429": alone_st.get("429", 0),
            "lost": alone_lost,
        },
        {
            "what": "quiet with loud's burst",
            **summary_ms(burst),
            "429": burst_st.get("429", 0),
            "lost": burst_lost,
        },
    ]
    result = {
        "global_rate_per_s": args.global_rate,
        "tenant_rate_per_s": args.tenant_rate,
        "quiet_rate_per_s": args.quiet_rate,
        "loud_rate_per_s": loud_rate,
        "duration_s": duration,
        "quiet_statuses_alone": alone_st,
        "quiet_statuses_burst": burst_st,
        "loud_statuses": loud_st,
        "rows": rows,
    }
    fair = "per-tenant buckets" if args.tenant_rate > 0 else "process-wide bucket only"
    emit(
        "fairness",
        result,
        [
            table(f"fairness ({fair}): quiet tenant's setup latency, ms", rows),
            f"loud tenant ({loud_rate:g} calls/s): HTTP statuses {loud_st}",
        ],
        args.json_out,
    )
    return result


def main() -> None:
    p = parser("two tenants, one bursting: the quiet tenant's setup latency")
    p.add_argument("--global-rate", type=float, default=10.0, help="admission_rate_per_s (default 10)")
    p.add_argument(
        "--tenant-rate", type=float, default=5.0, help="admission_tenant_rate_per_s (default 5; 0: off)"
    )
    p.add_argument("--quiet-rate", type=float, default=2.0, help="the quiet tenant's calls/s (default 2)")
    p.add_argument("--factor", type=float, default=5.0, help="the loud tenant bursts at factor x its share")
    p.add_argument("--duration", type=float, help="seconds per phase (default 10, --quick 6)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

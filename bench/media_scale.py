"""Benchmark: media at scale (issue 13 items 2 and 4): one bridge node with 1 or 2 media
processes, and the failover of a media process killed mid-talk.

**Scale.** An embedded stack with ``media_processes`` = 1, then 2 (the node, ``media/node.py``,
places each room on the least loaded process). Each step holds N two-way Opus calls through
the node's control API: the parties are ``bench.media_relay``'s (:class:`bench.media_relay.Party`:
pre-encoded Opus loops, arrivals counted without decoding), the caller and the listener of
each room offer, then the listener is made the talker (``PUT /rooms/{id}/talker``). Each room's
building call is a workflow that only exists (type ``bench-hold`` on a task queue without
worker: running, so the bridge keeps the room). Per step, over ``--duration`` s after a 2 s
warm-up: each media process's CPU (``/proc``, % of one core) and rooms, CPU per call per
process, audio frames delivered / expected and the late share (``bench.media_relay.Arrivals``:
later than :data:`bench.media_relay.LATE_S` beyond the stream's best delay), the parties' own
CPU. A step holds when every process stays under 80 % of a core, delivers >=
``MIN_DELIVERED`` and is late <= ``MAX_LATE`` (``bench.media_relay``'s criteria). Figures:
the largest step held per configuration, their ratio, and the calls per core implied by the
CPU per call (the measured ratio is bounded by the parties' and the other tenants' CPU on a
shared 2-core machine; both are printed).

**Failover.** An embedded stack with one registered node of 2 media processes, the worker and
the API; ``--failover-calls`` (10) door -> resident calls by device and resident agents
(``ringflow/agent.py``: real Opus both ways, decoded), all talking, all on media process 0
(empty rooms on process 1 while they are placed; ``--spread``: least-loaded as they come);
then kill -9 of the media process holding the most of them. Per call on it: kill -> both
parties hear the other again (5 loud frames on their new peers), seconds; then every call
hangs up and each must have its full history (``mediaInterruptVoip``/``mediaResumeVoip``
for the moved ones, ``finishVoip``, ``callEnded``) and one billing row with keepTime.
Target: >= 9 of 10 resume within 3 s.

``python -m bench.media_scale [--quick] [--steps 1=10,20,40;2=20,40,80] [--duration S]
[--failover-calls N] [--spread] [--only scale|failover]``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiortc import RTCSessionDescription

from bench.common import Bench, cpu_s, emit, info, load_directory, machine, open_bench, parser, pct, table
from bench.media_relay import (
    AUDIO_FPS,
    LATE_S,
    MAX_BRIDGE_CPU_PCT,
    MAX_LATE,
    MIN_DELIVERED,
    Media,
    Party,
    connected,
    run_queue_wait_s,
)
from media.network import MediaNetwork
from ringflow.agent import CallSession, DeviceAgent, MediaSpec, ResidentAgent, ResidentScript
from ringflow.contracts.common import Party as Who
from ringflow.contracts.common import PartyKind

HOLD_QUEUE = "bench-nobody"
"""A task queue no worker polls: the rooms' stand-in building calls stay running."""

RESUME_FRAMES = 5
"""Loud audio frames (100 ms) a party's new peer must hear for its call to count as resumed."""


# ---------------------------------------------------------------- scale


class NodeCall:
    """One two-way call on the node's control API: door (caller) and resident (listener,
    the talker), each a ``bench.media_relay.Party``."""

    def __init__(self, http: httpx.AsyncClient, media: Media) -> None:
        self.http = http
        self.call_id = f"scale-{uuid.uuid4().hex[:8]}"
        self.door = Party(media.tracks(440, False), ["audio"])
        self.resident = Party(media.tracks(880, False), ["audio"])

    async def _join(self, party: Party, who: Who, role: str) -> None:
        pc = party.pc
        await pc.setLocalDescription(await pc.createOffer())
        body = {"party": who.model_dump(mode="json"), "role": role, "sdp": pc.localDescription.sdp}
        r = (await self.http.post(f"/rooms/{self.call_id}/peers", json=body)).raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.json()["sdp"], type="answer"))
        party.listen()  # record arrivals at its receivers (they exist once the answer is applied)
        await connected(pc)

    async def start(self, bench: Bench) -> None:
        await bench.client.start_workflow("bench-hold", id=self.call_id, task_queue=HOLD_QUEUE)
        door = Who(kind=PartyKind.DEVICE, id=f"door-{self.call_id}")
        resident = Who(kind=PartyKind.USER, id=f"res-{self.call_id}")
        await self._join(self.door, door, "caller")
        await self._join(self.resident, resident, "listener")
        talker = {"party": resident.model_dump(mode="json"), "record": False}
        (await self.http.put(f"/rooms/{self.call_id}/talker", json=talker)).raise_for_status()

    async def close(self, bench: Bench) -> None:
        await self.door.close()
        await self.resident.close()
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(f"/rooms/{self.call_id}")
        with contextlib.suppress(Exception):
            await bench.client.get_workflow_handle(self.call_id).terminate("bench over")


async def processes(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The node's media processes (``GET /node``)."""
    found: list[dict[str, Any]] = (await http.get("/node")).raise_for_status().json()["processes"]
    return found


async def scale_step(
    bench: Bench, http: httpx.AsyncClient, media: Media, n: int, duration_s: float
) -> dict[str, Any]:
    """``n`` calls for ``duration_s`` s after a 2 s warm-up; one row."""
    calls = [NodeCall(http, media) for _ in range(n)]
    try:
        for i in range(0, n, 10):  # ten set-ups at a time: DTLS handshakes are CPU-heavy
            await asyncio.gather(*(c.start(bench) for c in calls[i : i + 10]))
        await asyncio.sleep(2.0)
        procs = await processes(http)
        cpu0 = {p["index"]: cpu_s(p["pid"]) for p in procs}
        wait0 = {p["index"]: run_queue_wait_s(p["pid"]) for p in procs}
        own0, own_wait0, t0 = time.process_time(), run_queue_wait_s(os.getpid()), time.monotonic()
        await asyncio.sleep(duration_s)
        cpu1 = {p["index"]: cpu_s(p["pid"]) for p in procs}
        wait1 = {p["index"]: run_queue_wait_s(p["pid"]) for p in procs}
        own1, own_wait1, t1 = time.process_time(), run_queue_wait_s(os.getpid()), time.monotonic()
        elapsed = t1 - t0
        row: dict[str, Any] = {"processes": len(procs), "calls": n}
        per_call = []
        for p in procs:
            cpu_pct = 100 * (cpu1[p["index"]] - cpu0[p["index"]]) / elapsed
            row[f"p{p['index']}_rooms"] = p["rooms"]
            row[f"p{p['index']}_cpu_pct"] = cpu_pct
            # runnable but not running (another process on its core): lateness then measures the machine
            row[f"p{p['index']}_waited_pct"] = 100 * (wait1[p["index"]] - wait0[p["index"]]) / elapsed
            if p["rooms"]:
                per_call.append(cpu_pct / p["rooms"])
        row["cpu_pct_per_call_per_process"] = sum(per_call) / len(per_call) if per_call else float("nan")
        streams = [s for c in calls for s in c.door.arrivals + c.resident.arrivals]
        extra = [d for s in streams for d in s.window(t0, t1)]
        row["audio_delivered"] = len(extra) / (2 * n * AUDIO_FPS * elapsed)
        row["audio_late"] = sum(1 for d in extra if d > LATE_S) / len(extra) if extra else float("nan")
        row["jitter_p99_ms"] = pct(extra, 99) * 1000
        row["parties_cpu_pct"] = 100 * (own1 - own0) / elapsed
        row["parties_waited_pct"] = 100 * (own_wait1 - own_wait0) / elapsed
        max_cpu = max(row[f"p{p['index']}_cpu_pct"] for p in procs)
        row["holds"] = (
            max_cpu < MAX_BRIDGE_CPU_PCT
            and row["audio_delivered"] >= MIN_DELIVERED
            and row["audio_late"] <= MAX_LATE
        )
        return row
    finally:
        for c in calls:
            with contextlib.suppress(Exception):
                await c.close(bench)


async def run_scale(steps: dict[int, list[int]], duration_s: float) -> dict[str, Any]:
    """Every configuration's steps (a fresh stack per process count)."""
    args = parser("").parse_args([])
    media = Media(video=False)
    out: dict[str, Any] = {}
    for n_proc, ns in steps.items():
        rows = []
        async with open_bench(
            f"media-scale-{n_proc}", args, media_enabled=True, media_processes=n_proc
        ) as bench:
            s = bench.settings
            async with httpx.AsyncClient(
                base_url=s.media_url, headers={"X-API-Key": s.api_key}, timeout=30
            ) as http:
                for n in ns:
                    info(f"[media_scale] {n_proc} process(es), {n} calls")
                    row = await scale_step(bench, http, media, n, duration_s)
                    info(f"[media_scale]   {row}")
                    rows.append(row)
                    if not row["holds"]:
                        break
        held = [r["calls"] for r in rows if r["holds"]]
        cpc = [r["cpu_pct_per_call_per_process"] for r in rows]  # every step: the cost, held or not
        out[str(n_proc)] = {
            "rows": rows,
            "held": max(held, default=0),
            "calls_per_core_est": MAX_BRIDGE_CPU_PCT / (sum(cpc) / len(cpc)) if cpc else float("nan"),
        }
    return out


# ---------------------------------------------------------------- failover


async def heard_again(session: CallSession, old: Any, deadline: float) -> float | None:
    """When ``session``'s new peer (not ``old``) has heard ``RESUME_FRAMES`` loud frames."""
    while time.monotonic() < deadline:
        peer = session.peer
        if peer is not None and peer is not old and peer.heard() >= RESUME_FRAMES:
            return time.monotonic()
        await asyncio.sleep(0.02)
    return None


async def run_failover(n_calls: int, concentrate: bool) -> dict[str, Any]:
    """``n_calls`` talking calls, kill -9 of the busiest media process; per-call resume times
    and the history/billing check. ``concentrate``: every call on process 0 (empty rooms fill
    process 1 while the calls are placed), so that the killed process holds all of them."""
    args = parser("").parse_args([])
    overrides = {
        "media_enabled": True,
        "media_processes": 2,
        "media_register": True,
        "media_node_id": "bench-node",
    }
    async with open_bench("media-failover", args, **overrides) as bench:
        s = bench.settings
        directory = await load_directory(bench, n_units=n_calls, n_devices=n_calls, ring_timeout_s=30)
        talk = ResidentScript(preview=False, answer_after_s=0.2, talk_s=None)
        agents: list[Any] = []
        sessions: list[tuple[CallSession, CallSession]] = []
        dummies: list[str] = []
        try:
            if concentrate:  # empty rooms on process 1: least-loaded placement puts every call on 0
                dummies = await fill_process(bench, 1, n_calls)
            for sn, (unit, [rid]) in zip(directory.devices, directory.units.items(), strict=True):
                resident = ResidentAgent(
                    bench.api_url, rid, await bench.backend.token(Who(kind=PartyKind.USER, id=rid)), talk
                )
                door = DeviceAgent(
                    bench.api_url,
                    sn,
                    await bench.backend.token(Who(kind=PartyKind.DEVICE, id=sn)),
                    MediaSpec(tone_hz=440, video=None),
                )
                await resident.start()
                await door.start()
                agents += [resident, door]
                mine = await door.place_call(unit_id=unit, room_type="voice")
                await asyncio.wait_for(mine.talking.wait(), 30)
                sessions.append((mine, resident.sessions[mine.call_id]))
            await close_rooms(bench, dummies)
            t_all = time.monotonic() + 30
            for mine, theirs in sessions:  # everybody talks: audio both ways
                for sess in (mine, theirs):
                    assert await heard_again(sess, None, t_all), sess.call_id
            async with httpx.AsyncClient(base_url=s.media_url, headers={"X-API-Key": s.api_key}) as http:
                rooms = {r["call_id"]: r for r in (await http.get("/rooms")).json()}
                procs = await processes(http)
                victim = max(procs, key=lambda p: p["rooms"])
                on_victim = await victim_rooms(http, victim, rooms)
            own0, w0, victim_cpu_start = time.process_time(), time.monotonic(), cpu_s(victim["pid"])
            await asyncio.sleep(3.0)
            parties_cpu_pct = 100 * (time.process_time() - own0) / (time.monotonic() - w0)
            victim_cpu0 = cpu_s(victim["pid"])
            old = {m.call_id: (m.peer, t.peer) for m, t in sessions}
            what = f"media process {victim['index']} (pid {victim['pid']}, {len(on_victim)} rooms)"
            info(f"[media_scale] kill -9 {what}")
            killed, killed_at = time.monotonic(), datetime.now(UTC)
            os.kill(victim["pid"], signal.SIGKILL)
            resumed: dict[str, float | None] = {}

            async def one(mine: CallSession, theirs: CallSession) -> None:
                a, b = await asyncio.gather(
                    heard_again(mine, old[mine.call_id][0], killed + 20),
                    heard_again(theirs, old[mine.call_id][1], killed + 20),
                )
                resumed[mine.call_id] = max(a, b) - killed if a and b else None

            await asyncio.gather(*(one(m, t) for m, t in sessions if m.call_id in on_victim))
            await asyncio.sleep(1.0)
            for mine, _ in sessions:
                await next(
                    a for a in agents if isinstance(a, DeviceAgent) and mine.call_id in a.sessions
                ).hang_up(mine.call_id)
            checks = [
                await check_history(bench, m.call_id, m.call_id in on_victim, killed_at) for m, _ in sessions
            ]
        finally:
            for agent in agents:
                with contextlib.suppress(Exception):
                    await agent.close()
        times = [t for t in resumed.values() if t is not None]
        # the agents' own answer -> first loud frame of the door (voice calls, no preview: the
        # resident offers while its answer is in flight), before the kill
        answer_to_audio = [t.answer_to_audio_s for _, t in sessions if t.answer_to_audio_s is not None]
        return {
            "calls": n_calls,
            "answer_to_audio_ms": {
                "p50": 1000 * pct(answer_to_audio, 50),
                "max": 1000 * max(answer_to_audio, default=float("nan")),
            },
            "parties_cpu_pct": parties_cpu_pct,
            "killed_process_cpu_pct_before": 100 * (victim_cpu0 - victim_cpu_start) / 3.0,
            "killed_process_rooms": len(on_victim),
            "resumed": len(times),
            "resumed_within_3s": sum(1 for t in times if t <= 3.0),
            "resume_s": {"p50": pct(times, 50), "max": max(times, default=float("nan"))},
            "interruption_s_recorded": [
                c["interruption_s"] for c in checks if c["interruption_s"] is not None
            ],
            "history_ok": sum(1 for c in checks if c["ok"]),
            "billed": sum(1 for c in checks if c["billed"]),
            "checks": checks,
        }


async def fill_process(bench: Bench, index: int, n: int) -> list[str]:
    """``n`` empty rooms (a talker update, no peer) put straight on media process ``index``,
    each with a stand-in building call; returns once the node counts them (its sync)."""
    s = bench.settings
    async with httpx.AsyncClient(base_url=s.media_url, headers={"X-API-Key": s.api_key}) as http:
        port = (await processes(http))[index]["port"]
        ids = [f"fill-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=dict(http.headers)
        ) as direct:
            for call_id in ids:
                await bench.client.start_workflow("bench-hold", id=call_id, task_queue=HOLD_QUEUE)
                (await direct.put(f"/rooms/{call_id}/talker", json={"party": None})).raise_for_status()
        for _ in range(100):  # the node's sync runs every heartbeat (1 s)
            if (await processes(http))[index]["rooms"] >= n:
                break
            await asyncio.sleep(0.2)
    return ids


async def close_rooms(bench: Bench, ids: list[str]) -> None:
    """Close rooms ``ids`` through the node and end their stand-in building calls."""
    s = bench.settings
    async with httpx.AsyncClient(base_url=s.media_url, headers={"X-API-Key": s.api_key}) as http:
        for call_id in ids:
            await http.delete(f"/rooms/{call_id}")
            with contextlib.suppress(Exception):
                await bench.client.get_workflow_handle(call_id).terminate("bench over")


async def victim_rooms(http: httpx.AsyncClient, victim: dict[str, Any], rooms: dict[str, Any]) -> set[str]:
    """The rooms on media process ``victim`` (asked from the process itself, via its port)."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{victim['port']}", headers=dict(http.headers)
    ) as direct:
        return {r["call_id"] for r in (await direct.get("/rooms")).json()} & set(rooms)


async def check_history(bench: Bench, call_id: str, moved: bool, killed_at: datetime) -> dict[str, Any]:
    """Call ``call_id`` ended with its whole history and one billing row (and, when its room
    moved, the interruption's two events, and when they were recorded after ``killed_at``,
    seconds: ``lost_after_s`` = the workflow knew, ``back_after_s`` = both parties back)."""
    deadline = time.monotonic() + 30
    while True:
        view = await bench.backend.call(call_id)
        if view["phase"] == "ended" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    names = [e["name"] for e in view["events"]]
    billed = await bench.pool.fetchval("SELECT keep_time_s FROM billing WHERE call_id = $1", call_id)
    back = [e for e in view["events"] if e["name"] == "mediaResumeVoip"]
    at = {e["name"]: datetime.fromisoformat(e["at"]) for e in view["events"]}
    since = {
        f"{key}_after_s": round((at[name] - killed_at).total_seconds(), 3) if name in at else None
        for key, name in (("lost", "mediaInterruptVoip"), ("back", "mediaResumeVoip"))
    }
    ok = {"calling", "hangUpVoip", "endVoip", "finishVoip", "callEnded"} <= set(names) and (
        not moved or {"mediaInterruptVoip", "mediaResumeVoip"} <= set(names)
    )
    return {
        "call_id": call_id,
        "moved": moved,
        "end_reason": view.get("end_reason"),
        "keep_time_s": view.get("keep_time_s"),
        "billed": billed is not None and billed == view.get("keep_time_s"),
        "interruption_s": back[0]["data"]["interruption_s"] if back else None,
        **since,
        "ok": ok,
    }


# ---------------------------------------------------------------- driver


def _steps(spec: str) -> dict[int, list[int]]:
    """``"1=10,20;2=20,40"`` -> ``{1: [10, 20], 2: [20, 40]}``."""
    out: dict[int, list[int]] = {}
    for part in spec.split(";"):
        n, _, values = part.partition("=")
        out[int(n)] = [int(v) for v in values.split(",") if v]
    return out


def main() -> None:
    p = parser("media at scale: 1 vs 2 media processes, and a media process killed mid-talk")
    p.add_argument("--steps", help="calls per step and process count, e.g. '1=10,20,40;2=20,40,80'")
    p.add_argument("--duration", type=float, help="measured seconds per step (default 10; quick 4)")
    p.add_argument("--failover-calls", type=int, help="talking calls before the kill (default 10)")
    p.add_argument(
        "--spread",
        action="store_true",
        help="failover: calls on both processes (default: all on the killed one)",
    )
    p.add_argument("--only", choices=["scale", "failover"], help="run one part")
    args = p.parse_args()
    MediaNetwork().install()  # the parties: host candidates on 127.0.0.1
    steps = _steps(args.steps or ("1=5,10;2=10,20" if args.quick else "1=10,20,30,40,50;2=20,40,60,80,100"))
    duration = args.duration or (4.0 if args.quick else 10.0)
    n_fail = args.failover_calls or 10
    result: dict[str, Any] = {"machine_before": machine()}
    tables = []
    if args.only != "failover":
        scale = result["scale"] = asyncio.run(run_scale(steps, duration))
        rows = [r for cfg in scale.values() for r in cfg["rows"]]
        one, two = scale.get("1", {}).get("held", 0), scale.get("2", {}).get("held", 0)
        result["held_ratio"] = two / one if one else float("nan")
        est1 = scale.get("1", {}).get("calls_per_core_est", float("nan"))
        est2 = scale.get("2", {}).get("calls_per_core_est", float("nan"))
        result["cpu_ratio_est"] = 2 * est2 / est1 if est1 == est1 and est1 else float("nan")
        tables.append(
            table(
                f"two-way Opus calls on one node (CPU % of one core per process); held 1 proc: {one}, "
                f"2 procs: {two} (ratio {result['held_ratio']:.2f}); by CPU per call: ratio "
                f"{result['cpu_ratio_est']:.2f}; load {machine()['loadavg']}",
                rows,
                list(dict.fromkeys(k for r in rows for k in r)),  # every process's columns
            )
        )
    if args.only != "scale":
        fo = result["failover"] = asyncio.run(run_failover(n_fail, not args.spread))
        tables.append(
            table(
                f"kill -9 of the media process holding {fo['killed_process_rooms']} of {fo['calls']} "
                f"talking calls; load {machine()['loadavg']}",
                [{k: v for k, v in fo.items() if k not in ("checks", "interruption_s_recorded")}],
            )
        )
    result["machine_after"] = machine()
    emit("media_scale", result, tables, args.json_out)


if __name__ == "__main__":
    main()

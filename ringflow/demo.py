"""``ringflow demo``: the main job on real input, end to end, on the embedded stack.

The lobby door of Maple Court (``examples/building.yaml``) calls unit 101,
whose policy is sequential A -> B -> C. Every resident is a real WebSocket
client with scripted behaviour: A never answers, B is already in a call from
the garage door, C answers, talks and hangs up. The demo prints the call's
timeline live and a summary, and exits 0 when the timeline is the expected
one (A timeout, B busy, C answered).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ringflow.client import Backend, PartyClient, Received
from ringflow.contracts.common import Party, PartyKind

BUILDING = Path(__file__).resolve().parent.parent / "examples" / "building.yaml"
LOBBY = "LOBBY-1"
GARAGE = "GARAGE-1"
UNIT = "101"
TALK_S = 3.0
ANSWER_AFTER_S = 1.0


@dataclass
class ScenarioResult:
    """What the demo saw: the lobby call's final view, the measured setup time (seconds:
    POST /v1/calls -> incoming_call at the first resident's socket), and whether the
    timeline is the expected one."""

    call: dict[str, Any]
    setup_s: float
    ok: bool
    problems: list[str]


def _user(uid: str) -> Party:
    return Party(kind=PartyKind.USER, id=uid)


def _device(sn: str) -> Party:
    return Party(kind=PartyKind.DEVICE, id=sn)


async def _wait_phase(backend: Backend, call_id: str, phases: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = await backend.call(call_id)
        if view["phase"] in phases:
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"call {call_id} still {view['phase']} after {timeout} s")
        await asyncio.sleep(0.1)


def _party_label(p: dict[str, Any] | None) -> str:
    return f"{p['kind']}:{p['id']}" if p else ""


async def run_scenario(
    base_url: str, api_key: str, ring_timeout_s: float, out: TextIO = sys.stdout
) -> ScenarioResult:
    """Run the demo scenario against a running ringflow (directory already loaded).

    ``ring_timeout_s``: ring timeout per resident for this call (the unit's own
    policy stays as loaded). Raises ``TimeoutError`` if the call does not end in
    time (4 ring timeouts + talk + margin).
    """
    backend = Backend(base_url, api_key)
    clients: list[PartyClient] = []
    try:
        unit = (await backend.http.get(f"/v1/units/{UNIT}")).raise_for_status().json()
        a, b, c = unit["residents"][:3]
        run = uuid.uuid4().hex[:8]

        async def answer(client: PartyClient, msg: Received) -> None:
            if msg.type == "incoming_call":
                await client.action(str(msg.call_id), "answer")

        async def answer_talk_hang_up(client: PartyClient, msg: Received) -> None:
            if msg.type == "incoming_call":
                await asyncio.sleep(ANSWER_AFTER_S)
                r = await client.action(str(msg.call_id), "answer")
                if r.status_code == 200:
                    await asyncio.sleep(TALK_S)
                    await client.action(str(msg.call_id), "hang-up")

        behaviours = {a: None, b: answer, c: answer_talk_hang_up}
        for uid, handler in behaviours.items():
            party = _user(uid)
            client = PartyClient(base_url, party, await backend.token(party), on_message=handler)
            await client.start()
            clients.append(client)
        print(f"residents online: {a} (never answers), {b} (busy), {c} (answers)", file=out)

        # B is already talking to the garage door.
        garage = await backend.place_call(
            {
                "caller": _device(GARAGE).model_dump(mode="json"),
                "callees": [_user(b).model_dump(mode="json")],
                "room_type": "voice",
            },
            f"demo-garage-{run}",
        )
        garage.raise_for_status()
        garage_id = garage.json()["call_id"]
        await _wait_phase(backend, garage_id, {"talk"}, timeout=15)
        print(f"{b} is in a call with the garage door ({garage_id})", file=out)

        policy = dict(unit["policy"], ring_timeout_s=ring_timeout_s)
        t0 = time.monotonic()
        r = await backend.place_call(
            {
                "caller": _device(LOBBY).model_dump(mode="json"),
                "unit_id": UNIT,
                "room_type": "video",
                "policy": policy,
            },
            f"demo-lobby-{run}",
        )
        r.raise_for_status()
        call_id = r.json()["call_id"]
        first = await clients[0].wait_for(lambda m: m.type == "incoming_call" and m.call_id == call_id)
        setup_s = first.received_at - t0
        print(f"\nlobby -> unit {UNIT}: call {call_id}", file=out)
        print(f"{'time':>7}  {'event':<20} {'party':<18} {'listener':<14} detail", file=out)

        printed: set[str] = set()
        deadline = time.monotonic() + 4 * ring_timeout_s + TALK_S + 30
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = await backend.call(call_id)
            for ev in view["events"]:
                if ev["id"] in printed:
                    continue
                printed.add(ev["id"])
                detail = " ".join(
                    f"{k}={ev[k]}" for k in ("keepTime", "err_code", "reason") if ev.get(k) not in (None, "")
                )
                at = time.monotonic() - t0
                print(
                    f"{at:6.1f}s  {ev['name']:<20} {_party_label(ev.get('party')):<18} "
                    f"{_party_label(ev.get('listener')):<14} {detail}",
                    file=out,
                    flush=True,
                )
            if view["phase"] == "ended" and any(e["name"] == "callEnded" for e in view["events"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError(f"call {call_id} did not end in time")

        await clients[1].action(garage_id, "hang-up")

        outcomes = [(att["listener"]["id"], att["outcome"]) for att in view["attempts"]]
        expected = [(a, "no_answer"), (b, "busy"), (c, "answered")]
        problems = [] if outcomes[:3] == expected else [f"attempts {outcomes} != expected {expected}"]
        print("\nsummary", file=out)
        print(f"  answered by : {_party_label(view.get('answered_by'))}", file=out)
        print(f"  keepTime    : {view.get('keep_time_s')} s (talk phase only)", file=out)
        print(f"  end reason  : {view.get('end_reason')}", file=out)
        print(f"  attempts    : {', '.join(f'{u}={o}' for u, o in outcomes)}", file=out)
        print(f"  call setup  : {setup_s * 1000:.0f} ms (POST /v1/calls -> push at {a}'s socket)", file=out)
        print(f"  Temporal UI : {view.get('temporal_ui_url')}", file=out)
        print("  result      : " + ("OK" if not problems else "UNEXPECTED: " + "; ".join(problems)), file=out)
        return ScenarioResult(call=view, setup_s=setup_s, ok=not problems, problems=problems)
    finally:
        for client in clients:
            await client.close()
        await backend.aclose()


async def run(ring_timeout_s: float, keep_stack: bool, out: TextIO = sys.stdout) -> int:
    """Bring a fresh embedded stack up (own data dir and free loopback ports), load
    ``examples/building.yaml`` through the ``ringflow directory load`` code path, run
    the scenario, and stop the stack (or keep it until Ctrl-C with ``keep_stack``).
    Returns the exit code: 0 when the timeline is the expected one."""
    import shutil
    import signal

    from ringflow.directory_load import load_building, read_building
    from ringflow.settings import get_settings
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from store.db import create_pool

    data_dir = get_settings().data_dir.resolve() / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = EmbeddedStack(isolated_settings(data_dir))
    print(f"ringflow demo: starting the embedded stack in {data_dir} ...", file=out, flush=True)
    async with stack:
        print(stack.describe(), file=out, flush=True)
        pool = await create_pool(stack.settings.database_url)
        try:
            counts = await load_building(pool, read_building(BUILDING))
        finally:
            await pool.close()
        print(f"loaded {BUILDING.name}: {counts}", file=out, flush=True)
        result = await run_scenario(stack.api_url, stack.settings.api_key, ring_timeout_s, out)
        if keep_stack:
            print("\nthe stack stays up (Ctrl-C stops it):\n" + stack.describe(), file=out, flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    return 0 if result.ok else 1


def main(ring_timeout_s: float = 4.0, keep_stack: bool = False) -> int:
    """``ringflow demo`` entry point; returns the process exit code."""
    return asyncio.run(run(ring_timeout_s, keep_stack))

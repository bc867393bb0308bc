"""``ringflow demo``: the main job on real input, end to end, with real media, on the embedded stack.

The lobby door of Maple Court (``examples/building.yaml``) calls unit 101, whose
policy is sequential A -> B -> C. Every party is an agent (``ringflow/agent.py``) on
the push channel with real aiortc media through the media bridge:

- the door station is a :class:`~ringflow.agent.DeviceAgent`: it places the call with
  its own token and joins the call's media room at once, sending a tone and a
  640x480 @ 15 fps test pattern;
- A lets it ring (timeout); B is already talking to the garage door (busy); C previews
  the door (counts video frames while it rings), answers, talks (audio both ways),
  presses "Open door" (the door agent opens and acknowledges) and hangs up.

The demo prints the call's timeline live and a summary: the timeline, call setup time,
bytes relayed each way (the ``callEnded`` event's ``traffic``, and the agents' own RTC
counters) and "door opened by carol at ...". The property-management backend is a webhook
receiver on 127.0.0.1 (``ringflow/webhook_receiver.py``), registered with ``POST /v1/webhooks``
first; the summary ends with the deliveries it received (type, call, signature checked).
It exits 0 when everything is as expected.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from media.peer import PeerStats
from ringflow import timeline
from ringflow.agent import CallSession, DeviceAgent, LoggingDoor, MediaSpec, ResidentAgent, ResidentScript
from ringflow.client import Backend
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.events import CallEvent
from ringflow.webhook_receiver import Receiver

BUILDING = Path(__file__).resolve().parent.parent / "examples" / "building.yaml"
LOBBY = "LOBBY-1"
GARAGE = "GARAGE-1"
UNIT = "101"
TALK_S = 3.0
"""C hangs up this long after the talk began, seconds."""
OPEN_DOOR_AFTER_S = 1.0
"""C presses "Open door" this long after the talk began, seconds."""
ANSWER_AFTER_S = 1.0
"""C answers after ringing (and previewing) this long, seconds."""


@dataclass
class ScenarioResult:
    """What the demo saw: the lobby call's final view, the measured setup time (seconds:
    POST /v1/calls -> incoming_call at the first resident's socket), whether everything is
    as expected (``problems`` says what is not), the door openings (UTC time, by whom),
    the bridge's traffic per party (``callEnded`` data), and the agents' own media counters
    (door and C, :class:`~media.peer.PeerStats`) and C's call session."""

    call: dict[str, Any]
    setup_s: float
    ok: bool
    problems: list[str]
    door_openings: list[tuple[datetime, str]] = field(default_factory=list)
    traffic: list[dict[str, Any]] = field(default_factory=list)
    door_stats: PeerStats | None = None
    resident_stats: PeerStats | None = None
    resident_session: CallSession | None = None


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


def _kb(n: int) -> str:
    return f"{n / 1000:,.1f} kB"


def traffic_of(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``traffic`` list of the view's ``callEnded`` event data (``PartyTraffic`` dicts), or []."""
    ended = next((e for e in view["events"] if e["name"] == "callEnded"), None)
    return list((ended or {}).get("data", {}).get("traffic") or [])


def _traffic_lines(traffic: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """Per direction, caller -> talker and back: the bytes the bridge received from the sender
    (by kind) and sent to the receiver; then any other party (a listener that only previewed).
    ``names``: party key -> how to call it."""
    caller = next((t for t in traffic if t.get("role") == "caller"), None)
    talker = next((t for t in traffic if t.get("role") != "caller" and t.get("bytes_received", 0) > 0), None)
    lines = []
    if caller is not None and talker is not None:
        for src, dst in ((caller, talker), (talker, caller)):
            s_name = names.get(timeline.party_label(src.get("party")), timeline.party_label(src.get("party")))
            d_name = names.get(timeline.party_label(dst.get("party")), timeline.party_label(dst.get("party")))
            lines.append(
                f"{s_name} -> {d_name}: {_kb(src.get('bytes_received', 0))} into the bridge "
                f"(audio {_kb(src.get('audio_bytes_received', 0))}, "
                f"video {_kb(src.get('video_bytes_received', 0))}), "
                f"{_kb(dst.get('bytes_sent', 0))} out to {d_name}"
            )
    for t in traffic:
        if t is not caller and t is not talker:
            who = timeline.party_label(t.get("party"))
            lines.append(
                f"{names.get(who, who)} ({t.get('role')}): "
                f"{_kb(t.get('bytes_received', 0))} into the bridge, {_kb(t.get('bytes_sent', 0))} out"
            )
    return lines


def _client_line(name: str, stats: PeerStats | None) -> str:
    if stats is None:
        return f"{name}: no media"
    a, v = stats.kind("audio"), stats.kind("video")
    return (
        f"{name}: sent audio {_kb(a.bytes_sent)} + video {_kb(v.bytes_sent)}; "
        f"received {a.frames_received} audio frames ({a.loud_frames} audible), "
        f"{v.frames_received} video frames; on the wire {_kb(stats.transport_bytes_sent)} out, "
        f"{_kb(stats.transport_bytes_received)} in"
    )


async def run_scenario(
    base_url: str, api_key: str, ring_timeout_s: float, out: TextIO = sys.stdout
) -> ScenarioResult:
    """Run the demo scenario against a running ringflow whose media bridge is on
    (``media_enabled``; directory already loaded).

    ``ring_timeout_s``: ring timeout per resident for this call (the unit's own policy
    stays as loaded). Raises ``TimeoutError`` if the call does not end in time (4 ring
    timeouts + talk + margin) and :class:`~ringflow.client.ApiError` if the API refuses a
    step.
    """
    backend = Backend(base_url, api_key)
    agents: list[DeviceAgent | ResidentAgent] = []
    hooks = await Receiver().start()  # the backend's webhook receiver (docs/webhooks.md)
    try:
        hook = await backend.http.post("/v1/webhooks", json={"url": hooks.url, "description": "demo backend"})
        hooks.secret = hook.raise_for_status().json()["secret"]
        unit = (await backend.http.get(f"/v1/units/{UNIT}")).raise_for_status().json()
        a, b, c = unit["residents"][:3]
        run = uuid.uuid4().hex[:8]

        async def resident(uid: str, script: ResidentScript) -> ResidentAgent:
            party = Party(kind=PartyKind.USER, id=uid)
            agent = ResidentAgent(base_url, uid, await backend.token(party), script)
            await agent.start()
            agents.append(agent)
            return agent

        async def device(sn: str, media: MediaSpec) -> DeviceAgent:
            agent = DeviceAgent(base_url, sn, await backend.token(_device(sn)), media)
            await agent.start()
            agents.append(agent)
            return agent

        await resident(a, ResidentScript(on_ring="ignore"))
        await resident(b, ResidentScript(on_ring="answer", preview=False, answer_after_s=0.0, talk_s=None))
        carol = await resident(
            c,
            ResidentScript(
                on_ring="answer",
                preview=True,
                answer_after_s=ANSWER_AFTER_S,
                actions=("open_door",),
                action_after_s=OPEN_DOOR_AFTER_S,
                talk_s=TALK_S,
            ),
        )
        door = await device(LOBBY, MediaSpec(audio="tone", video="pattern", tone_hz=440.0))
        garage = await device(GARAGE, MediaSpec(audio="tone", video=None, tone_hz=330.0))
        print(f"residents online: {a} (lets it ring), {b} (busy), {c} (previews, answers, opens)", file=out)

        # B is already talking to the garage door (a voice call with media both ways).
        garage_call = await garage.place_call(
            callees=[Party(kind=PartyKind.USER, id=b)], room_type="voice", key=f"demo-garage-{run}"
        )
        await _wait_phase(backend, garage_call.call_id, {"talk"}, timeout=20)
        print(f"{b} is in a call with the garage door ({garage_call.call_id})", file=out)

        policy = dict(unit["policy"], ring_timeout_s=ring_timeout_s)
        t0 = time.monotonic()
        lobby = await door.place_call(unit_id=UNIT, room_type="video", policy=policy, key=f"demo-lobby-{run}")
        call_id = lobby.call_id
        first = await agents[0].client.wait_for(lambda m: m.type == "incoming_call" and m.call_id == call_id)
        setup_s = first.received_at - t0
        print(f"\nlobby -> unit {UNIT}: call {call_id}", file=out)
        print(timeline.COLUMNS, file=out)

        printed: set[str] = set()
        deadline = time.monotonic() + 4 * ring_timeout_s + TALK_S + 30
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = await backend.call(call_id)
            started_at = datetime.fromisoformat(view["started_at"])
            for ev in view["events"]:
                if ev["id"] in printed:
                    continue
                printed.add(ev["id"])
                print(timeline.event_line(CallEvent.model_validate(ev), started_at), file=out, flush=True)
            if view["phase"] == "ended" and any(e["name"] == "callEnded" for e in view["events"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError(f"call {call_id} did not end in time")

        await garage.hang_up(garage_call.call_id)
        await _wait_phase(backend, garage_call.call_id, {"ended"}, timeout=15)
        with_carol = carol.sessions.get(call_id)
        if with_carol is not None:  # its stats are taken when its peer closes at the end
            await asyncio.wait_for(with_carol.ended.wait(), 10)
        await asyncio.wait_for(lobby.ended.wait(), 10)

        outcomes = [(att["listener"]["id"], att["outcome"]) for att in view["attempts"]]
        expected = [(a, "no_answer"), (b, "busy"), (c, "answered")]
        problems = [] if outcomes[:3] == expected else [f"attempts {outcomes} != expected {expected}"]
        assert isinstance(door.door, LoggingDoor)
        openings = [(at, req.by_name or req.by) for at, req in door.door.openings if req.call_id == call_id]
        acked = [d for d in door.actions_done if d.request.call_id == call_id and d.ack_result == "done"]
        if not openings or not acked:
            problems.append("the door was not opened (or not acknowledged) from the call")
        traffic = traffic_of(view)
        door_stats, carol_stats = lobby.stats, with_carol.stats if with_carol else None
        if carol_stats is None or carol_stats.kind("audio").loud_frames == 0:
            problems.append(f"{c} did not hear the door")
        if door_stats is None or door_stats.kind("audio").loud_frames == 0:
            problems.append(f"the door did not hear {c}")
        if with_carol is None or with_carol.preview_video_frames == 0:
            problems.append(f"{c} saw no video before answering (early media)")
        by_party = {timeline.party_label(t.get("party")): t for t in traffic}
        for who in (f"device:{LOBBY}", f"user:{c}"):
            t = by_party.get(who)
            if t is None or not (t.get("bytes_received", 0) > 0 and t.get("bytes_sent", 0) > 0):
                problems.append(f"callEnded traffic shows no bytes both ways for {who}")

        try:  # the backend hears of both calls' ends (the garage call's too)
            both = {call_id, garage_call.call_id}
            await hooks.wait_for(
                lambda r: both <= {x.call_id for x in r.received if x.type == "call.ended"}, timeout=15
            )
        except TimeoutError:
            problems.append("the backend's webhook did not receive call.ended of both calls")
        webhook_types = {x.type for x in hooks.unique().values() if x.call_id == call_id}
        wanted = {"call.created", "call.ringing", "call.answered", "call.action", "call.ended"}
        if not wanted <= webhook_types:
            problems.append(f"webhook deliveries of {call_id}: {sorted(t or '' for t in webhook_types)}")
        if not all(x.verified for x in hooks.received):
            problems.append("a webhook delivery's signature did not verify")

        print("\nsummary", file=out)
        print(f"  answered by : {timeline.party_label(view.get('answered_by'))}", file=out)
        print(f"  keepTime    : {view.get('keep_time_s')} s (talk phase only)", file=out)
        print(f"  end reason  : {view.get('end_reason')}", file=out)
        print(f"  attempts    : {', '.join(f'{u}={o}' for u, o in outcomes)}", file=out)
        print(f"  call setup  : {setup_s * 1000:.0f} ms (POST /v1/calls -> push at {a}'s socket)", file=out)
        if with_carol is not None:
            print(
                f"  early media : {c} saw {with_carol.preview_video_frames} video frames of the door "
                f"({with_carol.preview_pattern_frames} with its test-pattern counter) before answering",
                file=out,
            )
            if with_carol.answer_to_audio_s is not None:
                print(
                    f"  first audio : {with_carol.answer_to_audio_s * 1000:.0f} ms from {c}'s answer "
                    "to the door's first audible frame at her app",
                    file=out,
                )
        print("  relayed     : (bridge, callEnded traffic)", file=out)
        names = {f"device:{LOBBY}": f"door {LOBBY}", f"user:{c}": c}
        for line in _traffic_lines(traffic, names) or ["no traffic recorded"]:
            print(f"                {line}", file=out)
        print("  clients     : (their own RTC counters)", file=out)
        print(f"                {_client_line('door ' + LOBBY, door_stats)}", file=out)
        print(f"                {_client_line(c, carol_stats)}", file=out)
        for opened_at, by in openings:
            local = opened_at.astimezone().strftime("%H:%M:%S.%f")[:-3]
            print(f"  door        : opened by {by} at {local}", file=out)
        print(f"  Temporal UI : {view.get('temporal_ui_url')}", file=out)
        verified = sum(x.verified for x in hooks.received)
        print(
            f"  webhooks    : {len(hooks.received)} deliveries to the backend at {hooks.url} "
            f"(Standard Webhooks signature checked: {verified} valid)",
            file=out,
        )
        for x in hooks.received:
            check = "signature ok" if x.verified else f"BAD SIGNATURE ({x.error})"
            print(f"                {x.type or '?':<14} {x.call_id or '-':<28} {check}", file=out)
        print("  result      : " + ("OK" if not problems else "UNEXPECTED: " + "; ".join(problems)), file=out)
        return ScenarioResult(
            call=view,
            setup_s=setup_s,
            ok=not problems,
            problems=problems,
            door_openings=openings,
            traffic=traffic,
            door_stats=door_stats,
            resident_stats=carol_stats,
            resident_session=with_carol,
        )
    finally:
        for agent in agents:
            await agent.close()
        await backend.aclose()
        await hooks.stop()


async def run(ring_timeout_s: float, keep_stack: bool, out: TextIO = sys.stdout) -> int:
    """Bring a fresh embedded stack up with the media bridge (own data dir and free loopback
    ports; media on 127.0.0.1 only), load ``examples/building.yaml`` through the ``ringflow
    directory load`` code path, run the scenario, and stop the stack (or keep it until
    Ctrl-C with ``keep_stack``). Returns the exit code: 0 when all is as expected."""
    import shutil
    import signal

    from media.network import MediaNetwork
    from ringflow.directory_load import load_building, read_building
    from ringflow.settings import get_settings
    from ringflow.stack.embedded import EmbeddedStack, isolated_settings
    from store.db import create_pool

    data_dir = get_settings().data_dir.resolve() / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = EmbeddedStack(isolated_settings(data_dir, media_enabled=True))
    MediaNetwork.from_settings(stack.settings).install()  # the agents' ICE: the bridge's addresses
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

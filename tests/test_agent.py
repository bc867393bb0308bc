"""The device agent and scripted residents (``ringflow/agent.py``), their media
(``media/peer.py``) and ``ringflow device run``.

Without a stack: the video test pattern survives VP8 (aiortc's codec), file tracks loop
with increasing timestamps, bad media options and CLI arguments fail early, and the
command-line door actuator runs a real process.

On ONE embedded stack with the media bridge (module fixture; PostgreSQL, Temporal, the
worker, the API and the bridge as processes, media on 127.0.0.1 only): the door agent
calls a resident who previews, answers, talks with audio both ways and opens the door
(round trip through the device's ack); ``ringflow device run`` does the same as a
process; a resident calls the garage door station, which auto-answers
(``phone-calls-device.en.md``) and shows its camera.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import os
import signal
import sys
import wave
from array import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
import pytest_asyncio
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from typer.testing import CliRunner

from media.network import MediaNetwork
from media.peer import FileTrack, Received, TestPatternTrack, peak, read_counter
from ringflow.agent import (
    ActionRequest,
    CommandDoor,
    DeviceAgent,
    LoggingDoor,
    MediaSpec,
    ResidentAgent,
    ResidentScript,
)
from ringflow.cli import app
from ringflow.demo import traffic_of
from tests.fakes import until
from tests.integration_helpers import LOBBY, World, party_json, poll, running_world

ROOT = str(Path(__file__).resolve().parent.parent)
GARAGE_SN = "GARAGE-1"
SMALL = {"width": 320, "height": 240, "fps": 15.0}  # test video: a quarter of the CPU of 640x480


# ---------------------------------------------------------------- media without a stack


def test_pattern_counter_survives_vp8() -> None:
    track = TestPatternTrack(320, 240)
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000)
    encoder, decoder = get_encoder(codec), get_decoder(codec)
    seen = []
    for n in (0, 1, 2, 255, 40000):
        frame = track.render(n)
        frame.pts, frame.time_base = n * 6000, fractions.Fraction(1, 90000)
        assert read_counter(frame) == n
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(depayload(codec, p) for p in payloads)
        seen += [read_counter(f) for f in decoder.decode(JitterFrame(data=data, timestamp=timestamp))]
    assert seen == [0, 1, 2, 255, 40000]
    # a frame without the pattern (mid grey) has no counter
    grey = av.VideoFrame(64, 48, "yuv420p")
    for plane in grey.planes:
        plane.update(b"\x80" * plane.buffer_size)
    assert read_counter(grey) is None


def write_wav(path: Path, seconds: float, hz: float = 600.0, rate: int = 16000) -> Path:
    samples = array(
        "h", (int(12000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(int(seconds * rate)))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def write_video(path: Path, frames: int, fps: int = 25) -> Path:
    """A VP8 webm of ``frames`` test-pattern frames at ``fps``."""
    pattern = TestPatternTrack(160, 120)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for n in range(frames):
            frame = pattern.render(n)
            frame.pts = n
            frame.time_base = fractions.Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


async def test_file_tracks_loop_with_increasing_timestamps(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "door.wav", 0.3)
    audio = FileTrack(wav, "audio")
    try:
        frames = [await audio.recv() for _ in range(35)]  # 0.7 s: the 0.3 s file twice over
    finally:
        audio.stop()
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    assert all(isinstance(f, av.AudioFrame) and f.sample_rate == 48000 for f in frames)
    assert sum(peak(f) > Received.LOUD for f in frames) >= 25  # the sine, resampled, not silence

    webm = write_video(tmp_path / "door.webm", 6)
    video = FileTrack(webm, "video")
    try:
        frames_v = [await video.recv() for _ in range(14)]  # 6 frames per pass: past two loops
    finally:
        video.stop()
    vpts = [f.pts for f in frames_v]
    assert all(b > a for a, b in itertools.pairwise(vpts)), vpts
    assert [read_counter(f) for f in frames_v][:8] == [0, 1, 2, 3, 4, 5, 0, 1]


def test_media_spec_checks_files(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 0.1)
    MediaSpec(audio=str(wav), video="pattern").check()
    with pytest.raises(FileNotFoundError):
        MediaSpec(audio=str(tmp_path / "missing.wav")).check()
    with pytest.raises(ValueError, match="no video stream"):
        MediaSpec(video=str(wav)).check()
    with pytest.raises(ValueError, match="not a media file"):
        (tmp_path / "junk.wav").write_bytes(b"not audio at all")
        MediaSpec(audio=str(tmp_path / "junk.wav")).check()
    with pytest.raises(ValueError, match="even"):
        MediaSpec(width=641).check()


async def test_command_door_runs_the_command(tmp_path: Path) -> None:
    request = ActionRequest(call_id="c1", action_id="c1.action-1", action="open_door", by="user:carol")
    marker = tmp_path / "opened"
    script = tmp_path / "relay.sh"
    script.write_text(f'#!/bin/sh\necho "$RINGFLOW_BY" > {marker}\necho relay clicked\n')
    script.chmod(0o755)
    door = CommandDoor(str(script))
    assert await door.perform(request) == (True, "relay clicked")
    assert marker.read_text().strip() == "user:carol" and len(door.openings) == 1
    ok, detail = await CommandDoor("sh -c 'echo jammed; exit 3'").perform(request)
    assert not ok and detail == "exit 3: jammed"
    ok, detail = await CommandDoor(str(tmp_path / "no-such-relay")).perform(request)
    assert not ok and "cannot run" in detail
    ok, detail = await LoggingDoor().perform(ActionRequest("c1", "a", "launch_rocket", "user:carol"))
    assert not ok and "unsupported" in detail


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "t", "--api-key", "k"], "give --token or --api-key, not both"),
        (["--token", "t", "--room-type", "hologram"], "not video or voice"),
        (["--token", "t", "--once"], "--once needs --call"),
        (["--token", "t", "--call", "101", "--callee", "user:bob"], "not both"),
        (["--token", "t", "--callee", "bob"], "not user:ID or device:SN"),
        (["--token", "t", "--size", "big"], "not WIDTHxHEIGHT"),
        (["--token", "t", "--size", "641x480"], "even"),
        (["--token", "t", "--audio", "/nonexistent/door.wav"], "no media file"),
        (["--token", "t", "--listen-ip", "localhost"], "does not appear to be an IPv4 or IPv6"),
        (["--token", "t", "--fps", "0"], "greater than or equal to 1"),
        (["--token", "t", "--audio-prefetch", "0"], "greater than or equal to 1"),
        (["--token", "t", "--audio-prefetch", "9"], "less than or equal to 8"),
    ],
)
def test_device_run_argument_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["device", "run", "--sn", "LOBBY-1", *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())  # rich's error box wraps lines
    assert message in text, result.output


def test_device_run_needs_sn_and_is_listed() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["device", "run"]).exit_code == 2
    result = runner.invoke(app, ["device", "--help"])
    assert result.exit_code == 0 and "run" in result.output


# ---------------------------------------------------------------- on the embedded stack


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    MediaNetwork().install()  # this process's peers: host candidates on 127.0.0.1
    async with running_world(tmp_path_factory.mktemp("agent"), media_enabled=True) as w:
        yield w


@pytest_asyncio.fixture
async def agents() -> AsyncIterator[list[Any]]:
    """The agents a test starts, closed at its end (a device agent left connected would take
    the next test's pushes to that device)."""
    started: list[Any] = []
    yield started
    for agent in started:
        await agent.close()


async def resident_agent(
    world: World, agents: list[Any], script: ResidentScript, prefix: str
) -> ResidentAgent:
    [who] = await world.residents(1, prefix)
    agent = ResidentAgent(world.api_url, who.id, await world.backend.token(who), script)
    await agent.start()
    agents.append(agent)
    return agent


async def device_agent(world: World, agents: list[Any], sn: str, media: MediaSpec) -> DeviceAgent:
    token = await world.backend.token(LOBBY.model_copy(update={"id": sn}))
    agent = DeviceAgent(world.api_url, sn, token, media)
    await agent.start()
    agents.append(agent)
    return agent


def spy_ice_servers(agent: Any) -> list[list[dict[str, Any]]]:
    """Every answer of ``GET /v1/media/ice-servers`` the agent asks for from now on."""
    asked: list[list[dict[str, Any]]] = []
    real = agent.client.ice_servers

    async def ice_servers() -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = await real()
        asked.append(servers)
        return servers

    agent.client.ice_servers = ice_servers
    return asked


async def test_door_calls_resident_audio_both_ways_and_opens_door(world: World, agents: list[Any]) -> None:
    resident = await resident_agent(
        world,
        agents,
        ResidentScript(answer_after_s=1.5, actions=("open_door",), action_after_s=0.5, talk_s=2.5),
        "open",
    )
    door = await device_agent(world, agents, LOBBY.id, MediaSpec(tone_hz=440, **SMALL))
    door_ice, resident_ice = spy_ice_servers(door), spy_ice_servers(resident)
    session = await door.place_call(callees=[resident.party], policy={"ring_timeout_s": 20})
    call_id = session.call_id
    ended = await door.wait_ended(call_id, 40)
    mine = await resident.wait_ended(call_id, 10)
    # each peer connection asked the API for its ICE servers first (ringflow/ice.py); this stack
    # has none, so both stayed on host candidates (127.0.0.1), as before TURN existed
    assert door_ice and resident_ice and all(s == [] for s in door_ice + resident_ice)

    assert ended.answered_by == resident.party.key() and ended.end_reason == "hangUpVoip"
    # early media: the door's test pattern reached the resident while it rang
    assert mine.preview_video_frames > 0 and mine.preview_pattern_frames > 0
    # audio both ways, counted by each side's own peer
    assert mine.stats is not None and ended.stats is not None
    assert mine.stats.kind("audio").loud_frames >= 25  # >= 0.5 s of the door's tone
    assert ended.stats.kind("audio").loud_frames >= 25  # and of the resident's
    assert mine.stats.kind("video").pattern_frames > mine.preview_pattern_frames
    assert ended.stats.kind("video").bytes_sent > 0 and ended.stats.kind("audio").bytes_sent > 0
    assert mine.stats.kind("audio").packets_received > 0
    assert mine.answer_to_audio_s is not None and mine.answer_to_audio_s < 3.0
    # the open-door round trip: resident -> workflow -> door push -> actuator -> ack -> resident
    assert isinstance(door.door, LoggingDoor) and len(door.door.openings) == 1
    [done] = door.actions_done
    assert (done.request.action, done.ok, done.ack_status, done.ack_result) == (
        "open_door",
        True,
        200,
        "done",
    )
    assert done.request.by == resident.party.key()
    [rest] = mine.action_results  # the REST answer to the press
    assert rest["result"] == "done" and rest["detail"] == "door opened"
    await until(lambda: mine.action_pushes)  # and the custom_action_result push
    assert [(p["action_id"], p["result"]) for p in mine.action_pushes] == [(rest["action_id"], "done")]
    # the history has it all, and the bridge's traffic both ways
    view = await poll(
        lambda: world.backend.call(call_id), lambda v: v["phase"] == "ended" and traffic_of(v), 10, "traffic"
    )
    names = [e["name"] for e in view["events"]]
    assert names.index("calling") < names.index("customAction") < names.index("customActionResult")
    result = next(e for e in view["events"] if e["name"] == "customActionResult")
    assert result["data"]["result"] == "done" and result["party"] == party_json(door.party)
    traffic = {f"{t['party']['kind']}:{t['party']['id']}": t for t in traffic_of(view)}
    for who in (door.party.key(), resident.party.key()):
        assert traffic[who]["bytes_received"] > 0 and traffic[who]["bytes_sent"] > 0, traffic
    assert traffic[door.party.key()]["video_bytes_received"] > 0
    # both parties see the call in their own history
    for client in (door.client, resident.client):
        mine_calls = await client.my_calls(limit=5)
        assert call_id in [c["call_id"] for c in mine_calls["items"]]


async def test_door_learns_the_end_of_a_call_nobody_could_take(world: World, agents: list[Any]) -> None:
    # the only callee is on do-not-disturb: targetSkipped, then callEnded initiateFailed; no
    # room ever rang, so the door's only push is call_finished, with the reason
    [who] = await world.residents(1, "dnd")
    r = await world.backend.http.patch(f"/v1/users/{who.id}", json={"do_not_disturb": True})
    assert r.status_code == 200, r.text
    door = await device_agent(world, agents, LOBBY.id, MediaSpec(video=None))
    session = await door.place_call(callees=[who], room_type="voice")
    done = await door.wait_ended(session.call_id, 10)
    assert done.end_reason == "initiateFailed" and done.peer is None
    assert [m.type for m in door.client.received if m.call_id == session.call_id] == ["call_finished"]


async def test_resident_calls_device_which_auto_answers_and_shows_its_camera(
    world: World, agents: list[Any]
) -> None:
    # GARAGE-1 has auto_answer: true in examples/building.yaml; the agent follows the push
    garage = await device_agent(world, agents, GARAGE_SN, MediaSpec(tone_hz=330, **SMALL))
    assert garage.auto_answer is None
    viewer = await resident_agent(world, agents, ResidentScript(on_ring="ignore"), "viewer")
    # the resident places the call with its own token and joins as the caller (audio out,
    # audio and video in); the door station answers by itself
    viewer.media = MediaSpec(audio="tone", video=None, tone_hz=880, receive=("audio", "video"))
    session = await viewer.place_call(
        callees=[garage.party], room_type="video", policy={"ring_timeout_s": 15}
    )
    call_id = session.call_id
    view = await poll(lambda: world.backend.call(call_id), lambda v: v["phase"] == "talk", 20, "talk")
    assert view["answered_by"] == party_json(garage.party)
    peer = session.peer
    assert peer is not None
    # the garage's audio and camera at the resident
    await until(lambda: peer.heard("audio") >= 25 and sum(r.pattern for r in peer.received) >= 10, 15)
    garage_peer = garage.sessions[call_id].peer
    assert garage_peer is not None and garage_peer.heard("audio") > 0  # the resident's voice at the door
    assert await viewer.hang_up(call_id) == 200
    done = await garage.wait_ended(call_id, 15)
    assert done.role == "listener" and done.end_reason == "hangUpVoip"
    view = await world.wait_ended(call_id, 15)
    names = [e["name"] for e in view["events"]]
    assert names.index("answered") < names.index("calling") < names.index("hangUpVoip")


async def test_device_run_command_places_a_call_and_opens_the_door(
    world: World, agents: list[Any], tmp_path: Path
) -> None:
    resident = await resident_agent(
        world,
        agents,
        ResidentScript(
            preview=False, answer_after_s=0.5, actions=("open_door",), action_after_s=0.5, talk_s=2
        ),
        "cli",
    )
    wav = write_wav(tmp_path / "chime.wav", 0.5, hz=700)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ringflow.cli",
        "device",
        "run",
        "--sn",
        LOBBY.id,
        "--api",
        world.api_url,
        "--api-key",
        world.api_key,
        "--callee",
        resident.party.key(),
        "--audio",
        str(wav),
        "--size",
        "160x120",
        "--once",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await proc.wait()
    log = out.decode()
    assert proc.returncode == 0, log
    assert "joined the media room as caller" in log and "DOOR OPENED" in log, log
    assert "open_door done (door opened); ack -> 200 done" in log, log
    [call_id] = list(resident.sessions)
    session = await resident.wait_ended(call_id, 10)
    assert session.action_results[0]["result"] == "done"
    assert session.stats is not None and session.stats.kind("audio").loud_frames > 0  # the WAV chime

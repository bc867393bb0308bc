"""``ringflow simulate`` (issue 10 item 5): the scenario contract, the ``--check`` lint, the
simulator on the time-skipping test server (the real workflow, production's ring / resolve /
pre-call checks over the in-memory directory) and the command as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from ringflow.contracts.calls import AttemptOutcome
from ringflow.contracts.directory import Building
from ringflow.contracts.errors import ErrCode
from ringflow.directory_load import BuildingFileError, read_building
from ringflow.simulation.lint import check_building
from ringflow.simulation.runner import Simulation, simulate
from ringflow.simulation.scenario import (
    Scenario,
    SimulationError,
    check_scenario,
    read_scenario,
    resolve_when,
)
from tests.test_availability_workflow import next_dst_sunday

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BERLIN = ZoneInfo("Europe/Berlin")


def building() -> Building:
    return read_building(EXAMPLES / "building.yaml")


TOLERANCE_S = 0.15
"""The test server's clock runs at wall-clock pace while the driver and the worker work between
skips: simulated times are exact to a few hundredths of a second (README, docs/simulate.md)."""


class Near:
    """A number within :data:`TOLERANCE_S` of ``value`` (compares equal)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and abs(other - self.value) <= TOLERANCE_S

    def __repr__(self) -> str:
        return f"~{self.value}"


def names(sim: Simulation) -> list[tuple[float, str, str]]:
    """(seconds, event, listener id) of every event but the room bookkeeping."""
    skip = {"joinedRoomByCaller", "endVoip", "finishVoip"}
    return [
        ((e.at - sim.started_at).total_seconds(), e.name.value, e.listener.id if e.listener else "")
        for e in sim.events
        if e.name.value not in skip
    ]


def near(rows: list[tuple[float, str, str]]) -> list[tuple[Near, str, str]]:
    return [(Near(t), n, who) for t, n, who in rows]


# ---------------------------------------------------------------- the scenario contract


def test_scenario_files_of_the_examples_read_and_fit_the_building() -> None:
    for name in ("scenario-night.yaml", "scenario-edit.yaml", "scenario-busy.yaml"):
        scenario = read_scenario(EXAMPLES / name)
        check_scenario(scenario, building(), name)
    edit = read_scenario(EXAMPLES / "scenario-edit.yaml").edits[0]
    assert edit.policy is not None and edit.policy.model_fields_set == {"ring_timeout_s"}
    assert edit.sentence("101") == "unit 101 updated"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("unit: '201'\nat: 'Tue 25:00'\n", "1 invalid field: at: Value error, not a wall-clock time HH:MM"),
        ("unit: '201'\nat: 'Tus 23:00'\n", "at: Value error, unknown day 'Tus'"),
        ("unit: '201'\nat: '2026-12-01T23:00:00'\n", "at: Value error, an ISO datetime needs its offset"),
        (
            "unit: '201'\nat: '23:00'\nreactions: {farid: {answers_after_s: 1, passes_after_s: 2}}\n",
            "reactions.farid: Value error, give exactly one of answers_after_s",
        ),
        (
            "unit: '201'\nat: '23:00'\nedits: [{at_s: 3}]\n",
            "edits.0: Value error, an edit changes at least one",
        ),
        ("unit: '201'\nat: '23:00'\nedits: [{at_s: 3, policy: {ring_timeout_s: -1}}]\n", "edits.0.policy"),
        ("unit: '201'\nat: '23:00'\nwho: x\n", "who: Extra inputs are not permitted"),
        ("unit: '201'\nat: [\n", "not valid YAML at line 3, column 1"),
        ("- a\n", "the top level must be a mapping (unit, at, people, reactions, edits, ...)"),
    ],
)
def test_bad_scenario_files_are_one_line_errors_naming_the_field(
    tmp_path: Path, doc: str, expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(doc)
    with pytest.raises(BuildingFileError) as err:
        read_scenario(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message, message


def test_a_scenario_naming_what_the_building_lacks_is_refused() -> None:
    scenario = Scenario.model_validate(
        {
            "unit": "999",
            "caller": "NOPE",
            "at": "12:00",
            "people": {"zed": {"dnd": True}},
            "edits": [{"at_s": 1, "residents": ["farid", "yan"]}],
        }
    )
    with pytest.raises(BuildingFileError) as err:
        check_scenario(scenario, building(), "s.yaml")
    message = str(err.value)
    for part in (
        "unit: no unit '999'",
        "caller: no device 'NOPE'",
        "people.zed: no user 'zed'",
        "edits.0.residents: no user 'yan'",
    ):
        assert part in message


def test_wall_times_are_the_next_such_instant_dst_correct() -> None:
    # 2027-03-28 is the spring-forward Sunday of Europe/Berlin: 02:30 never shows -> 03:00 CEST
    after = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    assert resolve_when("Sun 02:30", "Europe/Berlin", after) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert resolve_when("Sat 23:30", "Europe/Berlin", after) == datetime(2027, 3, 27, 22, 30, tzinfo=UTC)
    # no day: the next one (today's 11:00 is past -> tomorrow's, summer time by then)
    assert resolve_when("11:00", "Europe/Berlin", after) == datetime(2027, 3, 28, 9, 0, tzinfo=UTC)
    iso = "2027-03-28T09:00:00+02:00"
    assert resolve_when(iso, "Europe/Berlin", after) == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)


# ---------------------------------------------------------------- --check


async def test_the_example_building_has_no_findings() -> None:
    assert await check_building(building(), datetime.now(UTC)) == []


async def test_the_lint_example_has_one_finding_per_mistake() -> None:
    findings = await check_building(read_building(EXAMPLES / "building-lint.yaml"), datetime.now(UTC))
    assert findings == [
        "unit 1 rings nobody from BIRCH-DOOR Mon,Tue,Wed,Thu,Fri,Sat,Sun 23:00-06:30 Europe/Berlin"
        " (every one skipped: errCode 1003 dnd: unit '1' quiet hours; no fallback)",
        "unit 2: fallback 'night-porter' is in do-not-disturb (the property manager's switch)",
        "unit 2: ring_through_dnd names group 'lobby', which the file does not have",
        "unit 3: resident 'cy' has not authorized any device of site birch"
        " (unreachable: errCode 9 from every door)",
        "unit 3: resident 'dora' is not a user of the file (unreachable)",
        "unit 3 rings nobody from any device (no target authorized one)",
    ]


async def test_unit_201_without_its_fallback_rings_nobody_at_night() -> None:
    """The example's unit 201 as it was before its fallback: its quiet hours (22:00-07:00 every
    night) skip every resident from the lobby and the garage; the desk rings through."""
    doc = building().model_dump()
    for unit in doc["units"]:
        if unit["id"] == "201":
            unit["policy"]["fallback_user_id"] = None
    findings = await check_building(Building.model_validate(doc), datetime.now(UTC))
    assert findings == [
        "unit 201 rings nobody from LOBBY-1, GARAGE-1 Mon,Tue,Wed,Thu,Fri,Sat,Sun 22:00-07:00 Europe/Berlin"
        " (every one skipped: errCode 1003 dnd: unit '201' quiet hours; no fallback)"
    ]


# ---------------------------------------------------------------- the simulator (time-skipping)


async def test_night_visitor_skips_the_residents_and_rings_the_fallback(ts_env: WorkflowEnvironment) -> None:
    """README's scenario: Tue 23:30 in the unit's quiet hours: each resident of both rounds is
    skipped (dnd, the unit's rule), the concierge (fallback) rings, answers after 10 s, talks 20 s."""
    sim = await simulate(building(), read_scenario(EXAMPLES / "scenario-night.yaml"), env=ts_env)
    local = sim.start.astimezone(BERLIN)
    assert (local.weekday(), local.time()) == (1, time(23, 30))
    skipped = [a for a in sim.result.attempts if a.outcome is AttemptOutcome.SKIPPED]
    assert [a.listener.id for a in skipped] == ["farid", "grace", "hugo"] * 2
    assert all(a.err_code is ErrCode.DO_NOT_DISTURB for a in skipped)
    assert all((a.reason or "").startswith("dnd: unit '201' quiet hours Tue 22:00-07:00") for a in skipped)
    assert names(sim)[-6:] == near(
        [
            (0.0, "escalated", "concierge"),
            (0.0, "ringing", "concierge"),
            (10.0, "answered", "concierge"),
            (10.0, "calling", "concierge"),
            (30.0, "hangUpVoip", "concierge"),
            (30.0, "callEnded", ""),
        ]
    )
    assert sim.result.end_reason == "hangUpVoip" and sim.result.keep_time_s == 20
    assert sim.notes == []


async def test_pass_and_a_policy_edit_mid_call(ts_env: WorkflowEnvironment) -> None:
    """scenario-edit: alice away (skipped 1017), bob rings; at 2 s carol is removed and the ring
    timeout becomes 15 s (planChanged); bob passes at 4 s: the concierge (fallback) rings at
    once, not carol, and answers after 5 s; talks 30 s."""
    sim = await simulate(building(), read_scenario(EXAMPLES / "scenario-edit.yaml"), env=ts_env)
    assert names(sim) == near(
        [
            (0.0, "callStarted", ""),
            (0.0, "targetSkipped", "alice"),
            (0.0, "escalated", "bob"),
            (0.0, "ringing", "bob"),
            (2.0, "planChanged", ""),
            (4.0, "passVoip", "bob"),
            (4.0, "escalated", "concierge"),
            (4.0, "ringing", "concierge"),
            (9.0, "answered", "concierge"),
            (9.0, "calling", "concierge"),
            (39.0, "hangUpVoip", "concierge"),
            (39.0, "callEnded", ""),
        ]
    )
    changed = next(e for e in sim.events if e.name.value == "planChanged")
    assert changed.reason == "unit 101 updated"
    assert (changed.data["removed"], changed.data["ring_timeout_s"]) == (["user:carol"], 15)
    push = next(p for p in sim.pushes if p.recipient.id == "concierge")
    assert push.payload["ring_timeout_s"] == 15
    assert sim.result.attempts[0].err_code is ErrCode.LISTENER_AWAY


async def test_busy_reject_and_a_caller_who_gives_up(ts_env: WorkflowEnvironment) -> None:
    scenario = Scenario.model_validate(
        {
            "unit": "102",
            "at": "Thu 09:00",
            "people": {"dan": {"busy": True}},
            "reactions": {"erin": {"rejects_after_s": 3}},
            "hang_up_at_s": 20,
        }
    )
    sim = await simulate(building(), scenario, env=ts_env)
    outcomes = [(a.listener.id, a.outcome) for a in sim.result.attempts]
    assert sorted(outcomes) == [("dan", AttemptOutcome.BUSY), ("erin", AttemptOutcome.REJECTED)]
    assert (Near(3.0), "rejectVoip", "erin") in names(sim)
    # the call was over at 3 s: the caller's hang-up at 20 s is not played, and said so
    assert sim.notes == ["  20.0s  caller hang up: not played, the call had ended"]


async def test_a_dst_night_at_each_rings_own_instant(ts_env: WorkflowEnvironment) -> None:
    """Europe/Berlin's spring-forward night, farid's own quiet hours Sat 22:00-07:00: at 06:59:50
    local (already summer time) he is skipped (until 07:00 local = 05:00 UTC: the night was 8 real
    hours), grace rings 30 s; round 2 starts at 07:00:20, after his quiet hours: farid rings then
    (each ring is checked at its own instant) and answers."""
    sunday = next_dst_sunday("Europe/Berlin", await ts_env.get_current_time(), forward=True)
    start = datetime.combine(sunday, time(6, 59, 50), BERLIN)
    night = {"days": ["sat"], "start": "22:00", "end": "07:00"}
    scenario = Scenario.model_validate(
        {
            "unit": "201",
            "at": start.isoformat(),
            "people": {"farid": {"quiet_hours": [night]}},
            "reactions": {"farid": {"answers_after_s": 2, "talks_s": 5}},
        }
    )
    doc = building().model_dump()
    for unit in doc["units"]:
        if unit["id"] == "201":
            unit["policy"]["quiet_hours"] = []
            unit["residents"] = ["farid", "grace"]
    sim = await simulate(Building.model_validate(doc), scenario, env=ts_env)
    assert [(a.listener.id, a.outcome) for a in sim.result.attempts] == [
        ("farid", AttemptOutcome.SKIPPED),
        ("grace", AttemptOutcome.NO_ANSWER),
        ("farid", AttemptOutcome.ANSWERED),
    ]
    quiet_end = datetime.combine(sunday, time(7), BERLIN)
    assert quiet_end.astimezone(UTC).hour == 5  # CEST: the clocks went forward that night
    reason = sim.result.attempts[0].reason or ""
    assert reason.startswith("dnd: user 'farid' quiet hours Sat 22:00-07:00 Europe/Berlin")
    assert f"(until {quiet_end.astimezone(UTC).isoformat()})" in reason
    rings = [e for e in sim.events if e.name.value == "ringing" and e.listener and e.listener.id == "farid"]
    assert len(rings) == 1 and rings[0].at >= quiet_end
    assert Near(30.0) == (rings[0].at - sim.started_at).total_seconds()


async def test_a_start_in_the_past_is_refused(ts_env: WorkflowEnvironment) -> None:
    scenario = Scenario.model_validate({"unit": "201", "at": "2020-01-01T00:00:00+00:00"})
    with pytest.raises(SimulationError, match="is in the past"):
        await simulate(building(), scenario, env=ts_env)


# ---------------------------------------------------------------- the command


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringflow.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT)},
    )


def test_cli_simulate_prints_the_timeline_and_exits_cleanly() -> None:
    done = run_cli("simulate", "examples/building.yaml", "examples/scenario-night.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no Temporal core warning, no fatal error at exit
    out = done.stdout.splitlines()
    assert out[0].startswith("simulated: examples/scenario-night.yaml on examples/building.yaml")
    assert any(line.startswith("  starts      : Tue ") and "23:30 Europe/Berlin" in line for line in out)
    assert any("10.0s  answered             user:concierge" in line for line in out)
    assert "  end reason  : hangUpVoip" in out


def test_cli_simulate_json_parses() -> None:
    done = run_cli("simulate", "examples/building.yaml", "examples/scenario-edit.yaml", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["scenario"]["unit"] == "101" and doc["scenario"]["time_zone"] == "Europe/Berlin"
    passed = next(e for e in doc["events"] if e["name"] == "passVoip")
    assert (passed["party"], abs(passed["at_s"] - 4.0) < 0.05) == ("user:bob", True)
    assert doc["result"]["answered_by"] == "user:concierge"
    assert [a["outcome"] for a in doc["result"]["attempts"]] == ["skipped", "passed", "answered"]


def test_cli_check_and_errors() -> None:
    clean = run_cli("simulate", "--check", "examples/building.yaml")
    assert (clean.returncode, clean.stdout) == (0, "no findings\n")
    found = run_cli("simulate", "--check", "examples/building-lint.yaml")
    assert found.returncode == 1 and len(found.stdout.splitlines()) == 6
    bad = run_cli("simulate", "examples/building.yaml", "examples/building-lint.yaml")
    assert bad.returncode == 1
    assert bad.stderr.startswith("ringflow: examples/building-lint.yaml: ") and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    debug = run_cli("--debug", "simulate", "examples/building.yaml", "examples/building-lint.yaml")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == bad.stderr.rstrip()
    neither = run_cli("simulate", "examples/building.yaml")
    assert neither.returncode == 1 and "give either a SCENARIO file or --check" in neither.stderr

"""ringflow/directory_load.py: reading building files and loading them idempotently (real PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from ringflow.directory_load import BuildingFileError, load_building, read_building
from store import directory as d

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "building.yaml"
TABLES = ("device_groups", "devices", "users", "units", "unit_residents", "authorizations")


async def _snapshot(pool: asyncpg.Pool) -> dict[str, list[dict]]:
    out = {}
    async with pool.acquire() as conn:
        for table in TABLES:
            out[table] = [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]
    return out


async def test_example_loads_and_second_load_changes_nothing(db_pool: asyncpg.Pool) -> None:
    building = read_building(EXAMPLE)
    first = await load_building(db_pool, building)
    assert first == {"sites": 1, "groups": 2, "devices": 3, "users": 9, "units": 3, "authorizations": 12}
    before = await _snapshot(db_pool)
    second = await load_building(db_pool, building)
    assert second == dict.fromkeys(first, 0)
    assert await _snapshot(db_pool) == before  # same rows, same updated_at

    async with db_pool.acquire() as conn:
        unit = await d.get_unit(conn, "101")
        assert unit.residents == ["alice", "bob", "carol"]
        assert (unit.policy.ring_timeout_s, unit.policy.fallback_user_id) == (30, "concierge")
        assert [u.id for u in await d.device_contacts(conn, "GARAGE-1")] == sorted(
            u.id for u in building.users
        )
        # the site's time zone and unit 201's quiet hours, rung through by the concierge desk
        site = await d.get_site(conn, "default")
        assert (site.name, site.time_zone) == ("Maple Court", "Europe/Berlin")
        policy = (await d.get_unit(conn, "201")).policy
        assert [(r.start.hour, r.end.hour, len(r.days)) for r in policy.quiet_hours] == [(22, 7, 7)]
        assert policy.ring_through_dnd is not None and policy.ring_through_dnd.groups == ["concierge-desk"]


async def test_reload_replaces_resident_order_and_moves_devices(db_pool: asyncpg.Pool) -> None:
    building = read_building(EXAMPLE)
    await load_building(db_pool, building)
    changed = building.model_copy(deep=True)
    changed.units[0].residents = ["carol", "alice"]
    changed.groups.append(changed.groups[0].model_copy(update={"id": "side-gate", "name": "Side gate"}))
    changed.devices[1].group_id = "side-gate"  # the file is the declared state: GARAGE-1 moves
    counts = await load_building(db_pool, changed)
    assert counts == {"sites": 0, "groups": 1, "devices": 1, "users": 0, "units": 1, "authorizations": 0}
    async with db_pool.acquire() as conn:
        assert (await d.get_unit(conn, "101")).residents == ["carol", "alice"]
        assert (await d.get_device(conn, "GARAGE-1")).group_id == "side-gate"
        assert await d.device_contacts(conn, "GARAGE-1") == []  # residents authorized main-entrance only


async def test_bad_reference_writes_nothing(db_pool: asyncpg.Pool) -> None:
    building = read_building(EXAMPLE)
    broken = building.model_copy(deep=True)
    broken.units[2].residents.append("ghost")
    with pytest.raises(d.UnknownReference) as exc:
        await load_building(db_pool, broken)
    assert exc.value.ident == "ghost"
    assert all(rows == [] for rows in (await _snapshot(db_pool)).values())


def test_read_building_formats_and_errors(tmp_path: Path) -> None:
    as_json = tmp_path / "b.json"
    as_json.write_text(json.dumps(read_building(EXAMPLE).model_dump(mode="json")))
    assert read_building(as_json) == read_building(EXAMPLE)

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("units: [unclosed\n")
    with pytest.raises(BuildingFileError, match="not valid YAML"):
        read_building(bad_yaml)

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("devices:\n  - sn: 'bad sn!'\n    name: x\n    talk_quota_s: -1\nextra: 1\n")
    with pytest.raises(BuildingFileError) as exc:
        read_building(invalid)
    message = str(exc.value)
    assert "devices.0.sn" in message and "devices.0.talk_quota_s" in message and "extra" in message

    with pytest.raises(BuildingFileError, match="top level must be a mapping"):
        bad_top = tmp_path / "list.yaml"
        bad_top.write_text("- 1\n")
        read_building(bad_top)
    with pytest.raises(BuildingFileError, match="cannot read"):
        read_building(tmp_path / "missing.yaml")

"""Building files: ``ringflow directory load FILE`` reads one (YAML or JSON) and upserts it.

``read_building`` parses and validates (``Building`` contract); ``load_building``
writes it in ONE transaction through ``store/directory.py``, so a bad reference
writes nothing and loading the same file twice changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import yaml
from pydantic import ValidationError

from ringflow.contracts.directory import Building
from store import directory as store
from store.db import transaction


class BuildingFileError(ValueError):
    """A building file that cannot be read, parsed or validated; the message names
    the file and, for validation errors, every bad field's location."""


def read_building(path: str | Path) -> Building:
    """The validated ``Building`` in ``path``: ``.json`` is JSON, anything else YAML
    (a JSON document is also valid YAML). Raises BuildingFileError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BuildingFileError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise BuildingFileError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {e}"
        ) from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildingFileError(
            f"{path}: the top level must be a mapping (groups, devices, users, units, ...)"
        )
    try:
        return Building.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()]
        raise BuildingFileError(f"{path}: {e.error_count()} invalid field(s):\n" + "\n".join(lines)) from e


async def load_building(pool: asyncpg.Pool, building: Building) -> dict[str, int]:
    """Upsert ``building`` in one transaction; returns, per kind (``groups``,
    ``devices``, ``users``, ``units``, ``authorizations``), how many rows were created
    or changed (all 0 when the directory already matches the file).

    Order: groups, users, devices, units (residents replaced by the file's order),
    authorizations (added; none removed). The file is the declared state, so a
    device listed in another group than its current one is moved (``force_add``,
    reference 1(1)). Raises store.directory's UnknownReference / Invalid (then
    nothing is written).
    """
    counts = dict.fromkeys(("groups", "devices", "users", "units", "authorizations"), 0)
    async with transaction(pool) as conn:
        for group in building.groups:
            counts["groups"] += (await store.put_group(conn, group))[1] is not store.Upsert.UNCHANGED
        for user in building.users:
            counts["users"] += (await store.put_user(conn, user))[1] is not store.Upsert.UNCHANGED
        for device in building.devices:
            _, status = await store.put_device(conn, device, force_add=True)
            counts["devices"] += status is not store.Upsert.UNCHANGED
        for unit in building.units:
            counts["units"] += (await store.put_unit(conn, unit))[1] is not store.Upsert.UNCHANGED
        for auth in building.authorizations:
            counts["authorizations"] += (await store.add_authorization(conn, auth))[1]
    return counts

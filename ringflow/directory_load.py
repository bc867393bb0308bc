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
    """A building file that cannot be read, parsed or validated. The message is ONE line
    (the CLI prints it as it is): the file, then the syntax error's line and column, or
    every bad field's path (``units.0.policy.ring_timeout_s``) with what is wrong with it."""


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
    except json.JSONDecodeError as e:
        raise BuildingFileError(
            f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except yaml.YAMLError as e:
        raise BuildingFileError(f"{path}: not valid YAML{_yaml_where(e)}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildingFileError(
            f"{path}: the top level must be a mapping (groups, devices, users, units, ...)"
        )
    try:
        return Building.model_validate(data)
    except ValidationError as e:
        fields = [f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()]
        n = e.error_count()
        raise BuildingFileError(
            f"{path}: {n} invalid field{'s' if n > 1 else ''}: " + "; ".join(fields)
        ) from e


def _yaml_where(e: yaml.YAMLError) -> str:
    """`` at line L, column C: problem`` of a YAML error, on one line (PyYAML counts from 0)."""
    if not isinstance(e, yaml.MarkedYAMLError):
        return f": {' '.join(str(e).split())}"
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = (e.problem or "syntax error") + (f" ({e.context})" if e.context else "")
    return f"{where}: {problem}"


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

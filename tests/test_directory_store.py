"""store/directory.py against real PostgreSQL: CRUD, force_add (reference 1(1)), both-direction queries."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from ringflow.contracts.directory import (
    AuthorizationIn,
    AuthorizationTarget,
    DeviceGroupIn,
    DeviceIn,
    DevicePatch,
    GroupMembership,
    UnitIn,
    UserIn,
    UserPatch,
)
from ringflow.contracts.policies import EscalationPolicy, RingStrategy
from store import directory as d
from store.db import transaction

FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


async def _seed(conn: asyncpg.Connection) -> None:
    await d.create_group(conn, DeviceGroupIn(id="A", name="Group A"))
    await d.create_group(conn, DeviceGroupIn(id="B", name="Group B"))
    await d.create_device(
        conn, DeviceIn(sn="DOOR-1", name="Lobby", group_id="A", voip_token_expires_at=FUTURE)
    )
    await d.create_device(conn, DeviceIn(sn="DOOR-2", name="Garage"))
    for uid in ("alice", "bob", "carol"):
        await d.create_user(conn, UserIn(id=uid, name=uid.title()))


async def test_device_crud_and_conflicts(db_pool: asyncpg.Pool) -> None:
    async with transaction(db_pool) as conn:
        await _seed(conn)
    async with db_pool.acquire() as conn:
        dev = await d.get_device(conn, "DOOR-1")
        assert (dev.name, dev.group_id, dev.voip_token_expires_at) == ("Lobby", "A", FUTURE)
        assert [x.sn for x in await d.list_devices(conn)] == ["DOOR-1", "DOOR-2"]
        assert [x.sn for x in await d.list_devices(conn, group_id="A")] == ["DOOR-1"]

        with pytest.raises(d.Conflict) as exc:
            await d.create_device(conn, DeviceIn(sn="DOOR-1", name="again"))
        assert exc.value.slug == "device-exists"
        with pytest.raises(d.UnknownReference) as ref:
            await d.create_device(conn, DeviceIn(sn="DOOR-9", name="x", group_id="nope"))
        assert (ref.value.kind, ref.value.field) == ("group", "group_id")
        assert await d.find_device(conn, "DOOR-9") is None
        with pytest.raises(d.NotFound):
            await d.get_device(conn, "DOOR-9")

        # PUT with identical fields writes nothing; a changed field bumps updated_at.
        same, status = await d.put_device(
            conn, DeviceIn.model_validate(dev.model_dump(include=set(DeviceIn.model_fields)))
        )
        assert status is d.Upsert.UNCHANGED and same.updated_at == dev.updated_at
        _, status = await d.put_device(conn, DeviceIn(sn="DOOR-1", name="Lobby 2", group_id="A"))
        assert status is d.Upsert.UPDATED
        # PUT into another group without force_add is the same conflict as group membership
        with pytest.raises(d.Conflict) as exc:
            await d.put_device(conn, DeviceIn(sn="DOOR-1", name="Lobby 2", group_id="B"))
        assert exc.value.slug == "device-in-another-group"

        # PATCH: explicit null clears the VoIP token and the quota; omitted fields stay.
        await d.patch_device(conn, "DOOR-2", DevicePatch(talk_quota_s=60, voip_token_expires_at=FUTURE))
        patched = await d.patch_device(
            conn, "DOOR-2", DevicePatch.model_validate({"voip_token_expires_at": None})
        )
        assert (patched.voip_token_expires_at, patched.talk_quota_s, patched.name) == (None, 60, "Garage")
        with pytest.raises(d.NotFound):
            await d.patch_device(conn, "nope", DevicePatch(name="x"))

        await d.delete_device(conn, "DOOR-2")
        with pytest.raises(d.NotFound):
            await d.delete_device(conn, "DOOR-2")


async def test_group_membership_force_add(db_pool: asyncpg.Pool) -> None:
    """Reference 1(1): a device force-added to B leaves A; users who authorized only A lose it."""
    async with transaction(db_pool) as conn:
        await _seed(conn)
        await d.add_authorization(conn, AuthorizationIn(user_id="alice", target_kind="group", target_id="A"))
        await d.add_authorization(conn, AuthorizationIn(user_id="bob", target_kind="group", target_id="B"))
    async with db_pool.acquire() as conn:
        assert [u.id for u in await d.device_contacts(conn, "DOOR-1")] == ["alice"]
        # already in A: adding again is a no-op
        assert (await d.add_group_device(conn, "A", GroupMembership(sn="DOOR-1"))).devices == ["DOOR-1"]
        with pytest.raises(d.Conflict) as exc:
            await d.add_group_device(conn, "B", GroupMembership(sn="DOOR-1"))
        assert exc.value.slug == "device-in-another-group"
        assert (await d.get_device(conn, "DOOR-1")).group_id == "A"

        moved = await d.add_group_device(conn, "B", GroupMembership(sn="DOOR-1", force_add=True))
        assert moved.devices == ["DOOR-1"]
        assert (await d.get_group(conn, "A")).devices == []
        assert [u.id for u in await d.device_contacts(conn, "DOOR-1")] == ["bob"]
        assert not await d.is_authorized(conn, "alice", "DOOR-1")
        assert await d.is_authorized(conn, "bob", "DOOR-1")

        # a device without a group joins without force_add
        await d.add_group_device(conn, "A", GroupMembership(sn="DOOR-2"))
        with pytest.raises(d.UnknownReference):
            await d.add_group_device(conn, "A", GroupMembership(sn="NOPE"))
        with pytest.raises(d.NotFound):
            await d.add_group_device(conn, "nope", GroupMembership(sn="DOOR-2"))

        await d.remove_group_device(conn, "A", "DOOR-2")
        assert (await d.get_device(conn, "DOOR-2")).group_id is None
        with pytest.raises(d.NotFound) as nf:
            await d.remove_group_device(conn, "A", "DOOR-2")
        assert nf.value.kind == "group member"

        # deleting a group keeps its devices and drops its authorizations
        await d.delete_group(conn, "B")
        assert (await d.get_device(conn, "DOOR-1")).group_id is None
        assert await d.list_authorizations(conn, user_id="bob") == []


async def test_authorization_queries_both_directions(db_pool: asyncpg.Pool) -> None:
    async with transaction(db_pool) as conn:
        await _seed(conn)
        await d.add_group_device(conn, "B", GroupMembership(sn="DOOR-2"))
    async with db_pool.acquire() as conn:
        auth, created = await d.add_authorization(
            conn, AuthorizationIn(user_id="alice", target_kind="device", target_id="DOOR-1")
        )
        assert created and auth.target_kind is AuthorizationTarget.DEVICE
        again, created = await d.add_authorization(
            conn, AuthorizationIn(user_id="alice", target_kind="device", target_id="DOOR-1")
        )
        assert not created and again.created_at == auth.created_at
        # alice: DOOR-1 directly and through group A (counted once); DOOR-2 through group B
        await d.add_authorization(conn, AuthorizationIn(user_id="alice", target_kind="group", target_id="A"))
        await d.add_authorization(conn, AuthorizationIn(user_id="alice", target_kind="group", target_id="B"))
        await d.add_authorization(
            conn, AuthorizationIn(user_id="bob", target_kind="device", target_id="DOOR-2")
        )
        assert [x.sn for x in await d.user_devices(conn, "alice")] == ["DOOR-1", "DOOR-2"]
        assert [x.sn for x in await d.user_devices(conn, "bob")] == ["DOOR-2"]
        assert await d.user_devices(conn, "carol") == []
        assert [u.id for u in await d.device_contacts(conn, "DOOR-2")] == ["alice", "bob"]
        assert [u.id for u in await d.device_contacts(conn, "DOOR-1")] == ["alice"]
        with pytest.raises(d.NotFound):
            await d.user_devices(conn, "nobody")
        with pytest.raises(d.NotFound):
            await d.device_contacts(conn, "nope")
        with pytest.raises(d.UnknownReference) as ref:
            await d.add_authorization(
                conn, AuthorizationIn(user_id="alice", target_kind="group", target_id="Z")
            )
        assert (ref.value.kind, ref.value.field) == ("group", "target_id")

        await d.revoke_authorization(conn, "alice", AuthorizationTarget.GROUP, "B")
        assert [x.sn for x in await d.user_devices(conn, "alice")] == ["DOOR-1"]
        with pytest.raises(d.NotFound):
            await d.revoke_authorization(conn, "alice", AuthorizationTarget.GROUP, "B")
        # deleting a device deletes the authorizations of it
        await d.delete_device(conn, "DOOR-2")
        assert await d.list_authorizations(conn, user_id="bob") == []


async def test_users_and_units(db_pool: asyncpg.Pool) -> None:
    async with transaction(db_pool) as conn:
        await _seed(conn)
    policy = EscalationPolicy(strategy=RingStrategy.SEQUENTIAL, ring_timeout_s=30, fallback_user_id="carol")
    async with db_pool.acquire() as conn:
        unit = await d.create_unit(
            conn, UnitIn(id="101", name="Unit 101", residents=["bob", "alice"], policy=policy)
        )
        assert unit.residents == ["bob", "alice"] and unit.policy == policy
        with pytest.raises(d.Conflict):
            await d.create_unit(conn, UnitIn(id="101", name="again"))
        with pytest.raises(d.UnknownReference) as ref:
            await d.create_unit(conn, UnitIn(id="102", name="x", residents=["alice", "ghost"]))
        assert (ref.value.ident, ref.value.field) == ("ghost", "residents")
        with pytest.raises(d.UnknownReference) as ref:
            await d.put_unit(
                conn, UnitIn(id="102", name="x", policy=EscalationPolicy(fallback_user_id="ghost"))
            )
        assert ref.value.field == "policy.fallback_user_id"
        with pytest.raises(d.Invalid):
            await d.put_unit(conn, UnitIn(id="102", name="x", residents=["alice", "alice"]))
        assert await d.find_unit(conn, "102") is None

        same, status = await d.put_unit(
            conn, UnitIn(id="101", name="Unit 101", residents=["bob", "alice"], policy=policy)
        )
        assert status is d.Upsert.UNCHANGED and same.updated_at == unit.updated_at
        reordered, status = await d.put_unit(
            conn, UnitIn(id="101", name="Unit 101", residents=["alice", "bob"], policy=policy)
        )
        assert status is d.Upsert.UPDATED and reordered.residents == ["alice", "bob"]
        assert reordered.updated_at > unit.updated_at

        # users: patch, the fallback cannot be deleted, a resident can (leaves the unit)
        patched = await d.patch_user(conn, "alice", UserPatch(do_not_disturb=True))
        assert patched.do_not_disturb and patched.name == "Alice"
        with pytest.raises(d.Conflict) as exc:
            await d.delete_user(conn, "carol")
        assert exc.value.slug == "user-in-use"
        await d.delete_user(conn, "bob")
        assert (await d.get_unit(conn, "101")).residents == ["alice"]
        assert [u.id for u in await d.list_users(conn)] == ["alice", "carol"]

        # round-robin memory
        assert await d.last_answered(conn, "101") is None
        assert await d.remember_answer(conn, "101", "alice")
        assert await d.last_answered(conn, "101") == "alice"
        assert not await d.remember_answer(conn, "nope", "alice")
        await d.delete_unit(conn, "101")
        with pytest.raises(d.NotFound):
            await d.delete_unit(conn, "101")

"""The directory: devices, device groups, users (residents), units, authorizations.

REST bodies and the building file (``ringflow directory load``) use these
models. Times are timezone-aware UTC datetimes; quotas are seconds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, field_validator

from ringflow.contracts.availability import check_time_zone
from ringflow.contracts.common import ActionName, Contract, Identifier
from ringflow.contracts.policies import EscalationPolicy
from ringflow.contracts.tenancy import DEFAULT_SITE

Name = str


class DeviceIn(Contract):
    """A device as created/replaced over REST or in a building file.

    ``name`` is the display name residents authorized and see as the caller
    name (reference FAQ 1.6: authorized device name = caller name).
    ``voip_token_expires_at``: the device's VoIP token validity; a call from a
    device whose token expired fails with errCode 13 (reference 1(2)); None =
    no VoIP token registered (also errCode 13).
    ``talk_quota_s``: remaining billable talk seconds (licence/traffic margin,
    reference section 1); None = unlimited.
    ``auto_answer``: the device answers calls placed to it by itself.
    ``actions``: the in-call actions the device performs when the listener in talk
    asks (reference FAQ 1.2, ``setCustomBtnText``; e.g. ``["open_door"]``).
    ``site_id``: the site (building) the device is in; a call it places to a unit number rings
    that site's unit (issue 9). The site must exist in the key's tenant.
    """

    sn: Identifier
    site_id: Identifier = DEFAULT_SITE
    model_id: str = Field("generic", min_length=1, max_length=64)
    name: Name = Field(..., min_length=1, max_length=128)
    group_id: Identifier | None = None
    voip_token_expires_at: AwareDatetime | None = None
    talk_quota_s: int | None = Field(None, ge=0)
    auto_answer: bool = False
    actions: list[ActionName] = Field(default_factory=list, max_length=16)


class Device(DeviceIn):
    """A stored device."""

    created_at: datetime
    updated_at: datetime

    def voip_token_problem(self, now: datetime) -> str | None:
        """Why the device's VoIP token is not valid at ``now`` (aware UTC), or None when it is.

        The reference's errCode 13 rule (troubleshooting guide 1(2)): no token, or an
        expired one. Used by the API before a call starts and by ``precall_check``.
        """
        expires = self.voip_token_expires_at
        if expires is None:
            return f"device {self.sn!r} has no VoIP token"
        if expires <= now:
            return f"device {self.sn!r} VoIP token expired at {expires.isoformat()}"
        return None


class DevicePatch(Contract):
    """Partial update of a device; omitted fields stay as they are."""

    model_id: str | None = Field(None, min_length=1, max_length=64)
    name: Name | None = Field(None, min_length=1, max_length=128)
    voip_token_expires_at: AwareDatetime | None = None
    talk_quota_s: int | None = Field(None, ge=0)
    auto_answer: bool | None = None
    actions: list[ActionName] | None = Field(None, max_length=16)


class DeviceGroupIn(Contract):
    """A device group; members join with ``POST /v1/device-groups/{id}/devices``."""

    id: Identifier
    name: Name = Field(..., min_length=1, max_length=128)


class DeviceGroup(DeviceGroupIn):
    """A stored device group with its member sns."""

    devices: list[Identifier] = Field(default_factory=list)


class GroupMembership(Contract):
    """Add a device to a group. ``force_add`` moves it out of its current group
    (reference 1(1): a device force-added to group B leaves group A, and users
    who authorized only A can no longer be called from it)."""

    sn: Identifier
    force_add: bool = False


class UserIn(Contract):
    """A resident or staff member who can be called."""

    id: Identifier
    name: Name = Field(..., min_length=1, max_length=128)
    do_not_disturb: bool = False


class User(UserIn):
    """A stored user."""

    created_at: datetime


class UserPatch(Contract):
    """Partial update of a user."""

    name: Name | None = Field(None, min_length=1, max_length=128)
    do_not_disturb: bool | None = None


class UnitIn(Contract):
    """A unit (flat, office, room): ordered residents and an escalation policy.

    ``residents`` order is the hunt order of the sequential strategy. ``site_id``: the site
    (building) of the unit; unit numbers are unique per site (issue 9).
    """

    id: Identifier
    site_id: Identifier = DEFAULT_SITE
    name: Name = Field(..., min_length=1, max_length=128)
    residents: list[Identifier] = Field(default_factory=list, max_length=50)
    policy: EscalationPolicy = Field(default_factory=EscalationPolicy)


class Unit(UnitIn):
    """A stored unit."""

    created_at: datetime
    updated_at: datetime


class AuthorizationTarget(StrEnum):
    """What a user authorized: one device or a device group (reference 1(1))."""

    DEVICE = "device"
    GROUP = "group"


class AuthorizationIn(Contract):
    """``user_id`` authorizes ``target_id`` (a device sn or a group id) to call them."""

    user_id: Identifier
    target_kind: AuthorizationTarget
    target_id: Identifier


class Authorization(AuthorizationIn):
    """A stored authorization."""

    created_at: datetime


class SiteIn(Contract):
    """A site (a building or a campus) of a tenant; ``time_zone`` is an IANA name
    (``Europe/Paris``; checked against the zones this machine knows, when it knows any): the
    unit's and its residents' quiet hours are in it (``ringflow.availability``)."""

    id: Identifier
    name: Name = Field(..., min_length=1, max_length=128)
    time_zone: str = Field("UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_time_zone(value)


class Building(Contract):
    """A whole building file for ``ringflow directory load`` (YAML or JSON).

    Loading is an upsert in one transaction: loading the same file twice
    changes nothing. Authorizations listed are added; none are removed.
    ``site``: the site the file describes (created or renamed by the load); absent = the
    tenant's default site. Its units and devices belong to it (issue 9).
    """

    site: SiteIn | None = None

    groups: list[DeviceGroupIn] = Field(default_factory=list)
    devices: list[DeviceIn] = Field(default_factory=list)
    users: list[UserIn] = Field(default_factory=list)
    units: list[UnitIn] = Field(default_factory=list)
    authorizations: list[AuthorizationIn] = Field(default_factory=list)

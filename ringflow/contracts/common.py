"""Small shared types: parties, room types, identifiers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]
"""Ids of devices (sn), users, units, groups and calls: 1-128 chars of ``[A-Za-z0-9._:@-]``."""

ActionName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""An in-call action a device performs (``open_door``): 1-64 chars, lower snake case."""


class Contract(BaseModel):
    """Base of every contract: unknown fields are rejected, models are plain data."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RoomType(StrEnum):
    """The reference's ``roomType``."""

    VOICE = "voice"
    VIDEO = "video"


class PartyKind(StrEnum):
    """Who a party is: a resident/user (phone app) or a device (door station, panel)."""

    USER = "user"
    DEVICE = "device"


class Party(Contract):
    """One end of a call: ``kind`` + ``id`` (user id or device sn)."""

    kind: PartyKind
    id: Identifier

    def key(self) -> str:
        """``"user:ID"`` / ``"device:SN"``: the party's key in line claims, push recipients, tokens."""
        return f"{self.kind.value}:{self.id}"

    @classmethod
    def parse_key(cls, key: str) -> Party:
        """Inverse of :meth:`key`; raises ``ValueError`` on a malformed key."""
        kind, _, ident = key.partition(":")
        return cls(kind=PartyKind(kind), id=ident)

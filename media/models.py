"""Messages of the media signaling API and of the bridge's internal control API.

Plain pydantic (no aiortc import), so the REST API can use them without loading
the media stack. SDP bodies are at most ``MAX_SDP_BYTES`` characters.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ringflow.contracts.common import Contract, Identifier, Party

MAX_SDP_BYTES = 32 * 1024
"""Largest SDP accepted, characters (an audio+video offer with candidates is ~3-6 KB)."""


class Role(StrEnum):
    """A party's role in a room (the reference's names)."""

    CALLER = "caller"
    LISTENER = "listener"

    def other(self) -> Role:
        """The other end of the room."""
        return Role.LISTENER if self is Role.CALLER else Role.CALLER


class SdpOffer(Contract):
    """``POST /v1/calls/{call_id}/media`` body: the party's complete SDP offer (ICE gathered,
    no trickle) for room ``room_id`` of that call."""

    room_id: Identifier
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    type: Literal["offer"] = "offer"


class SdpAnswer(Contract):
    """The bridge's complete SDP answer (its candidates included)."""

    sdp: str
    type: Literal["answer"] = "answer"


class PeerOffer(Contract):
    """Bridge control ``POST /rooms/{room_id}/peers``: a party's offer, authorised by the API.
    The room is created by its first offer (``call_id`` = the EscalationWorkflow to signal)."""

    call_id: Identifier
    party: Party
    role: Role
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    type: Literal["offer"] = "offer"


class PeerInfo(Contract):
    """One peer of a room as the bridge sees it (``state``: RTCPeerConnection.connectionState)."""

    party: Party
    role: Role
    state: str
    joined: bool


class RoomInfo(Contract):
    """Bridge control ``GET /rooms``: a live room and its peers."""

    room_id: str
    call_id: str
    peers: list[PeerInfo] = Field(default_factory=list)

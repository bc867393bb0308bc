"""Messages of the media signaling API and of the bridge's internal control API.

Plain pydantic (no aiortc import), so the REST API and the media activities can use
them without loading the media stack. SDP bodies are at most ``MAX_SDP_BYTES``
characters. One room per building call, id = ``call_id`` (``docs/media.md``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ringflow.contracts.common import Contract, Party

MAX_SDP_BYTES = 32 * 1024
"""Largest SDP accepted, characters (an audio+video offer with candidates is ~3-6 KB)."""


class Role(StrEnum):
    """A party's role in a room (the reference's names): the one caller (the door), and
    every listener the building call rings."""

    CALLER = "caller"
    LISTENER = "listener"


class SdpOffer(Contract):
    """``POST /v1/calls/{call_id}/media`` body: the party's complete SDP offer (ICE gathered,
    no trickle) for the media room of building call ``call_id``."""

    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    type: Literal["offer"] = "offer"


class SdpAnswer(Contract):
    """The bridge's complete SDP answer (its candidates included)."""

    sdp: str
    type: Literal["answer"] = "answer"


class PeerOffer(Contract):
    """Bridge control ``POST /rooms/{call_id}/peers``: a party's offer, authorised by the API
    (which decided ``role``). The room is created by its first offer or talker update."""

    party: Party
    role: Role
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    type: Literal["offer"] = "offer"


class TalkerUpdate(Contract):
    """Bridge control ``PUT /rooms/{call_id}/talker``: the listener who talks with the caller
    (None: nobody; the door hears nobody), and whether to record the talk
    (``docs/media.md``; sent by ``MediaActivities.connect``). Idempotent: the same
    talker and ``record`` again change nothing."""

    party: Party | None = None
    record: bool = False


class PeerInfo(Contract):
    """One peer of a room as the bridge sees it (``state``: RTCPeerConnection.connectionState)."""

    party: Party
    role: Role
    state: str
    joined: bool


class RoomInfo(Contract):
    """Bridge control ``GET /rooms`` and the answer of ``PUT .../talker``: a live room, its
    talker, the recording in progress (path) and its peers."""

    call_id: str
    talker: Party | None = None
    recording: str | None = None
    peers: list[PeerInfo] = Field(default_factory=list)

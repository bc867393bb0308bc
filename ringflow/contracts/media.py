"""Media contracts shared by the workflows, the media activities and the bridge
(``docs/media.md``): who talks in a building call's media room, and the traffic
the bridge relayed.

One media room per building call (id = ``call_id``). Byte and packet counts are
RTP payload bytes and packets from aiortc's RTC stats, summed over every peer
connection the party had in the room (a replaced or closed peer's last stats
included): ``outbound-rtp`` ``bytesSent``/``packetsSent`` = bridge -> party,
``inbound-rtp`` ``packetsReceived`` = party -> bridge. aiortc's ``inbound-rtp``
has no byte count, so the bytes received from a party are the party's own count
in its last RTCP sender report (``remote-outbound-rtp`` ``bytesSent``, sent
every 0.5-1.5 s): what arrived, when nothing was lost on the way.
"""

from __future__ import annotations

from pydantic import Field

from ringflow.contracts.common import Contract, Party

MEDIA_CONNECT = "media_connect"
"""Activity name of ``MediaActivities.connect(MediaConnectInput) -> MediaPlacement | None`` (bridge
``PUT /rooms/{call_id}/talker``); the workflows call it by this name."""
MEDIA_CLOSE_ROOM = "media_close_room"
"""Activity name of ``MediaActivities.close_room(call_id: str) -> RoomStats | None`` (bridge
``DELETE /rooms/{call_id}``; None when the bridge has no such room)."""


class BridgeLostInput(Contract):
    """Signal ``media_bridge_lost`` (issue 13 item 4): the media process or node that held
    room ``room_id`` (= ``call_id``) died; its peers are gone without a ``media_lost``.
    Sent by the node's supervisor when one of its processes exits (``media/node.py``), or by
    the node monitor in a worker when a node missed its heartbeats (``ringflow/media_monitor.py``).
    ``node``: the dead node's id (``"<node>/<process index>"`` for one process)."""

    room_id: str
    node: str | None = None
    error: str | None = None


class MediaPlacement(Contract):
    """What ``MediaActivities.connect`` answers (issue 13 item 3): the node holding the room
    (``node_id``; None in a single-bridge deployment, ``media_url``) and how often it moved."""

    node_id: str | None = None
    moves: int = 0


class MediaConnectInput(Contract):
    """``MediaActivities.connect``: ``listener`` answered building call ``call_id``; from now on
    the caller and ``listener`` hear and see each other (the talker). ``record``: record
    the talk (unit policy ``record_media``)."""

    call_id: str
    listener: Party
    record: bool = False


class PartyTraffic(Contract):
    """What the bridge relayed for one party of a room (see the module docstring)."""

    party: Party
    role: str  # "caller" or "listener"
    bytes_received: int = 0  # party -> bridge
    bytes_sent: int = 0  # bridge -> party
    packets_received: int = 0
    packets_sent: int = 0
    audio_bytes_received: int = 0
    video_bytes_received: int = 0


class RoomStats(Contract):
    """A room's traffic per party, and the recording's path when the talk was recorded."""

    call_id: str
    parties: list[PartyTraffic] = Field(default_factory=list)
    recording: str | None = None  # the first recording's path (<media_recordings_dir>/<call_id>.mkv)
    recordings: list[str] = Field(default_factory=list)  # every recording, in order (a later talker's too)
    duration_s: float = 0.0  # room open -> closed (or now), seconds

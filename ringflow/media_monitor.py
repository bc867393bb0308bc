"""The media node monitor (issue 13 item 4): an asyncio service in every worker process
(``ringflow/worker.py``, beside the webhook dispatcher) that notices a dead bridge node.

Every ``interval_s`` (half the nodes' heartbeat period) the monitor takes or renews a lease
in PostgreSQL (``store.media_nodes.take_lease``, ``lease_s`` = 3 intervals): only its holder
acts, another worker's monitor takes over when a holder dies. The holder marks the open
rooms of nodes that missed their heartbeats for ``media_node_expiry_s`` lost
(``claim_lost_rooms``: each room once) and signals each room's building call
``media_bridge_lost`` (``BridgeLostInput``): the call re-offers its parties on a live node
(``workflows/media_failover.py``). A node's own media processes are watched by the node
itself (``media/node.py``), which sees an exit at once. Durations are seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import asyncpg
from temporalio.client import Client

from media.signals import signal_bridge_lost
from ringflow.contracts.media import BridgeLostInput
from store import media_nodes

log = logging.getLogger("ringflow.media_monitor")


class NodeMonitor:
    """Watches the node registry on ``pool`` and tells ``client``'s workflows; ``expiry_s``:
    how long a node may be silent; ``interval_s``: how often to look."""

    def __init__(self, pool: asyncpg.Pool, client: Client, expiry_s: float, interval_s: float) -> None:
        self.pool = pool
        self.client = client
        self.expiry_s = expiry_s
        self.interval_s = interval_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    async def step(self) -> list[media_nodes.Placement]:
        """One look: when this monitor holds the lease, the rooms it found lost (their calls
        signalled); else []."""
        if not await media_nodes.any_node(self.pool):
            return []  # a single bridge at media_url: nothing to watch, no lease to write
        if not await media_nodes.take_lease(self.pool, self.holder, 3 * self.interval_s):
            return []
        lost = await media_nodes.claim_lost_rooms(self.pool, self.expiry_s)
        for room in lost:
            log.warning("media node %s is dead: moving room %s", room.node_id, room.call_id)
        await asyncio.gather(
            *(
                signal_bridge_lost(
                    self.client,
                    room.call_id,
                    BridgeLostInput(
                        room_id=room.call_id,
                        node=room.node_id,
                        error=f"media node {room.node_id} missed its heartbeats for {self.expiry_s:g} s",
                    ),
                )
                for room in lost
            )
        )
        return lost

    async def run(self) -> None:
        """:meth:`step` every ``interval_s`` until cancelled (errors logged, tried again)."""
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("media node monitor step failed")
            await asyncio.sleep(self.interval_s)

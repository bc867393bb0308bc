-- depends: 0010.availability_rules
-- Issue 13 items 3 and 4: the media bridge nodes and which node holds each building call's
-- media room (store/media_nodes.py, docs/media.md "Many nodes").
-- A node registers itself at start and heartbeats every media_node_heartbeat_s (~1 s); it is
-- live while heartbeat_at is younger than media_node_expiry_s. Rows of dead nodes stay (the
-- API then knows a registry exists and never falls back to media_url) until a node with the
-- same id registers again or a day after it was lost (store.media_nodes.claim_lost_rooms).

CREATE TABLE media_nodes (
    node_id       text PRIMARY KEY,
    control_url   text NOT NULL,               -- the node's control API (media/server.py)
    media_address text NULL,                   -- the address announced in its SDP answers
    capacity      integer NOT NULL CHECK (capacity > 0),  -- rooms it accepts
    processes     integer NOT NULL DEFAULT 1 CHECK (processes > 0),
    rooms         integer NOT NULL DEFAULT 0,
    peers         integer NOT NULL DEFAULT 0,
    cpu_percent   real NOT NULL DEFAULT 0,     -- of one core, summed over its media processes
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    lost_at       timestamptz NULL             -- the monitor saw it miss its heartbeats
);

-- room (= building call id) -> node. placed_at changes when the room moves (failover);
-- lost_at: its node died and the call's workflow was told (media_bridge_lost); closed_at:
-- the workflow closed the room (MediaActivities.close_room).
CREATE TABLE media_rooms (
    call_id    text PRIMARY KEY,
    node_id    text NOT NULL,
    placed_at  timestamptz NOT NULL DEFAULT now(),
    moves      integer NOT NULL DEFAULT 0,
    lost_at    timestamptz NULL,
    closed_at  timestamptz NULL
);
CREATE INDEX media_rooms_open_by_node ON media_rooms (node_id) WHERE closed_at IS NULL;

-- The node monitor's lease (ringflow/media_monitor.py): every worker runs a monitor, the one
-- holding this row acts, another takes over when the lease runs out.
CREATE TABLE media_monitor_lease (
    id       integer PRIMARY KEY CHECK (id = 1),
    holder   text NOT NULL,
    until    timestamptz NOT NULL
);

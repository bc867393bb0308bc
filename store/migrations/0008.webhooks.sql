-- depends: 0006.tenants
-- Issue 9 items 3 and 4: domain events (the webhook and event-feed payloads), per tenant, and
-- the signed webhooks' endpoints, delivery outbox and attempts (docs/webhooks.md).
--
-- events: written by store/feed.py in the transaction of the call records that cause them.
-- seq is per tenant, allocated from event_sequences under its row lock, so within a tenant
-- seq order is commit order and the feed's cursor (the last seq read) never skips a row
-- that commits later.

CREATE TABLE event_sequences (
    tenant_id  text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_seq   bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
    id           text PRIMARY KEY,        -- "<call event id>/<type>": stable across retries
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,         -- per tenant, increasing in commit order
    type         text NOT NULL,           -- call.created, call.ringing, ...
    call_id      text,                    -- NULL for device events
    order_key    text NOT NULL,           -- deliveries keep this key's order: the call, or the device
    occurred_at  timestamptz NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, seq)
);

CREATE TABLE webhook_endpoints (
    id                    text PRIMARY KEY,   -- "wh_..."
    tenant_id             text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                   text NOT NULL,
    description           text NOT NULL DEFAULT '',
    event_types           text[] NOT NULL DEFAULT '{}',  -- empty: every type
    enabled               boolean NOT NULL DEFAULT true,
    secret                text NOT NULL,      -- "whsec_<base64>" (Standard Webhooks)
    previous_secret       text,               -- still signed with until previous_expires_at (rotation)
    previous_expires_at   timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    failing_since         timestamptz,        -- first failed attempt since the last success
    disabled_reason       text,
    disabled_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, created_at);

-- the outbox: one row per (endpoint, event), written with the event (fan-out at write time)
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,        -- "dlv_..."
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    order_key        text NOT NULL,
    seq              bigint NOT NULL,         -- the event's seq: order within (endpoint, order_key)
    state            text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts         integer NOT NULL DEFAULT 0,
    window_start     timestamptz NOT NULL DEFAULT now(),  -- retries stop window_s after this
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_token      text,
    lease_until      timestamptz,
    last_status      integer,
    last_error       text,
    last_latency_ms  integer,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, order_key, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n            integer NOT NULL,
    at           timestamptz NOT NULL,
    status_code  integer,
    error        text,
    latency_ms   integer NOT NULL,
    PRIMARY KEY (delivery_id, n)
);

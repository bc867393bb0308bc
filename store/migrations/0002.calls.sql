-- depends: 0001.directory
-- Calls: building calls, their attempts (one per caller-listener room), the event
-- history, line claims (busy check), billing and the push outbox.
-- Times are timestamptz (UTC); durations are whole seconds (keep_time_s = the reference's keepTime).

CREATE TABLE calls (
    call_id          text PRIMARY KEY,
    caller_kind      text,
    caller_id        text,
    caller_name      text,
    unit_id          text,
    callees          jsonb,
    room_type        text,
    strategy         text,
    phase            text,
    started_at       timestamptz,
    talk_started_at  timestamptz,
    ended_at         timestamptz,
    answered_by      text,            -- party key "user:alice"
    end_reason       text,
    err_code         integer,
    keep_time_s      integer
);
CREATE INDEX calls_started_idx ON calls (started_at DESC, call_id DESC);
CREATE INDEX calls_unit_idx ON calls (unit_id, started_at DESC);
CREATE INDEX calls_caller_idx ON calls (caller_kind, caller_id, started_at DESC);
CREATE INDEX calls_answered_by_idx ON calls (answered_by, started_at DESC);
CREATE INDEX calls_end_reason_idx ON calls (end_reason, started_at DESC);

CREATE TABLE attempts (
    room_id        text PRIMARY KEY,  -- "<call_id>.<seq>"
    call_id        text NOT NULL,
    seq            integer NOT NULL,
    round          integer NOT NULL DEFAULT 1,
    listener       text NOT NULL,     -- party key
    listener_name  text,
    fallback       boolean NOT NULL DEFAULT false,
    phase          text NOT NULL,
    started_at     timestamptz,
    ended_at       timestamptz,
    outcome        text,
    end_reason     text,
    err_code       integer,
    reason         text,
    keep_time_s    integer
);
CREATE INDEX attempts_call_idx ON attempts (call_id, seq);
CREATE INDEX attempts_listener_idx ON attempts (listener, call_id);

CREATE TABLE call_events (
    id           text PRIMARY KEY,    -- made by the workflow: "<room or call id>#<seq>"
    call_id      text NOT NULL,
    room_id      text,
    seq          integer NOT NULL DEFAULT 0,
    name         text NOT NULL,
    at           timestamptz NOT NULL,
    party        text,
    listener     text,
    err_code     integer,
    keep_time_s  integer,
    reason       text,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX call_events_call_at_idx ON call_events (call_id, at);

CREATE TABLE line_claims (
    party_key   text PRIMARY KEY,     -- "user:alice" / "device:LOBBY-1": one room at a time
    call_id     text NOT NULL,
    room_id     text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE billing (
    room_id      text PRIMARY KEY,
    call_id      text NOT NULL,
    caller       text NOT NULL,
    listener     text NOT NULL,
    keep_time_s  integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_call_idx ON billing (call_id);

CREATE TABLE outbox (
    id         text PRIMARY KEY,      -- made by the workflow (deterministic)
    recipient  text NOT NULL,         -- party key
    seq        bigserial NOT NULL,
    type       text NOT NULL,
    call_id    text NOT NULL,
    room_id    text,
    at         timestamptz NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    acked_at   timestamptz
);
CREATE INDEX outbox_unacked_idx ON outbox (recipient, seq) WHERE acked_at IS NULL;

-- The directory: devices, device groups, users (residents), units, authorizations.
-- Ids are the callers' own text ids (device sn, user id, ...). Multi-tenancy
-- later adds a tenant_id column to each table and to its primary key; every
-- query already goes through store/directory.py, so that change stays there.

CREATE TABLE device_groups (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    sn                     text PRIMARY KEY,
    model_id               text NOT NULL DEFAULT 'generic',
    name                   text NOT NULL,
    -- reference 1(1): a device is in at most one device group
    group_id               text NULL REFERENCES device_groups (id) ON DELETE SET NULL,
    -- reference 1(2): NULL = no VoIP token registered (errCode 13)
    voip_token_expires_at  timestamptz NULL,
    -- remaining billable talk seconds; NULL = unlimited (reference section 1, quota)
    talk_quota_s           integer NULL CHECK (talk_quota_s >= 0),
    auto_answer            boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_group_id_idx ON devices (group_id);

CREATE TABLE users (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    do_not_disturb  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE units (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    policy      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A unit's residents in hunt order (position 0 first).
CREATE TABLE unit_residents (
    unit_id   text NOT NULL REFERENCES units (id) ON DELETE CASCADE,
    user_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position  integer NOT NULL,
    PRIMARY KEY (unit_id, user_id),
    UNIQUE (unit_id, position)
);
CREATE INDEX unit_residents_user_id_idx ON unit_residents (user_id);

-- reference 1(1): a user authorizes a device or a device group.
CREATE TABLE authorizations (
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_kind  text NOT NULL CHECK (target_kind IN ('device', 'group')),
    target_id    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, target_kind, target_id)
);
CREATE INDEX authorizations_target_idx ON authorizations (target_kind, target_id);

-- The one definition of "user may be called from device" (reference 1(1)):
-- the user authorized the device itself, or the device group it is in NOW
-- (a device removed from or force-moved out of a group loses that group's users).
CREATE VIEW authorized_pairs AS
SELECT DISTINCT a.user_id, d.sn
FROM authorizations a
JOIN devices d
  ON (a.target_kind = 'device' AND a.target_id = d.sn)
  OR (a.target_kind = 'group' AND a.target_id = d.group_id);

-- Round-robin memory (reference FAQ 1.5): who answered the unit's last call.
CREATE TABLE unit_rr_memory (
    unit_id                text PRIMARY KEY REFERENCES units (id) ON DELETE CASCADE,
    last_answered_user_id  text NULL REFERENCES users (id) ON DELETE SET NULL,
    at                     timestamptz NOT NULL DEFAULT now()
);

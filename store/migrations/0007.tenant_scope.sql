-- depends: 0006.tenants
-- Issue 9: everything a tenant owns names its tenant, and today's rows are the default tenant's
-- (the column defaults). Directory ids are unique per tenant (two tenants may both have a user
-- "alice"), unit numbers per site (a unit and a device belong to one site of their tenant).
-- Call ids, room, event and push ids are tenant-qualified where they cross processes
-- ("acme~press-1"; the default tenant's stay as they are, ringflow/contracts/tenancy.py), so
-- their primary keys stay; their tenant_id column is what every query filters by.

-- ---------------------------------------------------------------- API keys
-- The secret is 32 random bytes: only its sha256 is stored (a fast hash is enough for a
-- high-entropy secret: there is no dictionary to try). The key's id is its public prefix.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    scopes        text[] NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NULL,
    last_used_at  timestamptz NULL,
    revoked_at    timestamptz NULL
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- ---------------------------------------------------------------- the directory
DROP VIEW authorized_pairs;
ALTER TABLE devices DROP CONSTRAINT devices_group_id_fkey;
ALTER TABLE unit_residents DROP CONSTRAINT unit_residents_unit_id_fkey;
ALTER TABLE unit_residents DROP CONSTRAINT unit_residents_user_id_fkey;
ALTER TABLE unit_residents DROP CONSTRAINT unit_residents_unit_id_position_key;
ALTER TABLE authorizations DROP CONSTRAINT authorizations_user_id_fkey;
ALTER TABLE unit_rr_memory DROP CONSTRAINT unit_rr_memory_unit_id_fkey;
ALTER TABLE unit_rr_memory DROP CONSTRAINT unit_rr_memory_last_answered_user_id_fkey;

ALTER TABLE device_groups ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE device_groups DROP CONSTRAINT device_groups_pkey, ADD PRIMARY KEY (tenant_id, id);

ALTER TABLE users ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE users DROP CONSTRAINT users_pkey, ADD PRIMARY KEY (tenant_id, id);

ALTER TABLE devices ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE devices ADD COLUMN site_id text NOT NULL DEFAULT 'default';
ALTER TABLE devices DROP CONSTRAINT devices_pkey, ADD PRIMARY KEY (tenant_id, sn);
ALTER TABLE devices ADD FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id);
ALTER TABLE devices ADD FOREIGN KEY (tenant_id, group_id) REFERENCES device_groups (tenant_id, id)
    ON DELETE SET NULL (group_id);
DROP INDEX devices_group_id_idx;
CREATE INDEX devices_group_id_idx ON devices (tenant_id, group_id);

ALTER TABLE units ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE units ADD COLUMN site_id text NOT NULL DEFAULT 'default';
ALTER TABLE units DROP CONSTRAINT units_pkey, ADD PRIMARY KEY (tenant_id, site_id, id);
ALTER TABLE units ADD FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id);

ALTER TABLE unit_residents ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE unit_residents ADD COLUMN site_id text NOT NULL DEFAULT 'default';
ALTER TABLE unit_residents DROP CONSTRAINT unit_residents_pkey,
    ADD PRIMARY KEY (tenant_id, site_id, unit_id, user_id);
ALTER TABLE unit_residents ADD UNIQUE (tenant_id, site_id, unit_id, position);
ALTER TABLE unit_residents ADD FOREIGN KEY (tenant_id, site_id, unit_id)
    REFERENCES units (tenant_id, site_id, id) ON DELETE CASCADE;
ALTER TABLE unit_residents ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX unit_residents_user_id_idx;
CREATE INDEX unit_residents_user_id_idx ON unit_residents (tenant_id, user_id);

ALTER TABLE authorizations ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE authorizations DROP CONSTRAINT authorizations_pkey,
    ADD PRIMARY KEY (tenant_id, user_id, target_kind, target_id);
ALTER TABLE authorizations ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX authorizations_target_idx;
CREATE INDEX authorizations_target_idx ON authorizations (tenant_id, target_kind, target_id);

ALTER TABLE unit_rr_memory ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE unit_rr_memory ADD COLUMN site_id text NOT NULL DEFAULT 'default';
ALTER TABLE unit_rr_memory DROP CONSTRAINT unit_rr_memory_pkey, ADD PRIMARY KEY (tenant_id, site_id, unit_id);
ALTER TABLE unit_rr_memory ADD FOREIGN KEY (tenant_id, site_id, unit_id)
    REFERENCES units (tenant_id, site_id, id) ON DELETE CASCADE;
ALTER TABLE unit_rr_memory ADD FOREIGN KEY (tenant_id, last_answered_user_id)
    REFERENCES users (tenant_id, id) ON DELETE SET NULL (last_answered_user_id);

-- The one definition of "user may be called from device" (reference 1(1)), within a tenant.
CREATE VIEW authorized_pairs AS
SELECT DISTINCT a.tenant_id, a.user_id, d.sn
FROM authorizations a
JOIN devices d
  ON d.tenant_id = a.tenant_id
 AND ((a.target_kind = 'device' AND a.target_id = d.sn)
   OR (a.target_kind = 'group' AND a.target_id = d.group_id));

-- ---------------------------------------------------------------- calls
ALTER TABLE calls ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE calls ADD COLUMN site_id text NULL;
CREATE INDEX calls_tenant_started_idx ON calls (tenant_id, started_at DESC, call_id DESC);
ALTER TABLE attempts ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE call_events ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE line_claims ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE billing ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE outbox ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';

-- Rollback of 0007.tenant_scope: only the default tenant's rows keep their meaning.
DROP VIEW authorized_pairs;
DROP TABLE api_keys;
ALTER TABLE outbox DROP COLUMN tenant_id;
ALTER TABLE billing DROP COLUMN tenant_id;
ALTER TABLE line_claims DROP COLUMN tenant_id;
ALTER TABLE call_events DROP COLUMN tenant_id;
ALTER TABLE attempts DROP COLUMN tenant_id;
DROP INDEX calls_tenant_started_idx;
ALTER TABLE calls DROP COLUMN site_id, DROP COLUMN tenant_id;
DELETE FROM unit_rr_memory WHERE tenant_id <> 'default' OR site_id <> 'default';
DELETE FROM authorizations WHERE tenant_id <> 'default';
DELETE FROM unit_residents WHERE tenant_id <> 'default' OR site_id <> 'default';
DELETE FROM units WHERE tenant_id <> 'default' OR site_id <> 'default';
DELETE FROM devices WHERE tenant_id <> 'default';
DELETE FROM users WHERE tenant_id <> 'default';
DELETE FROM device_groups WHERE tenant_id <> 'default';
ALTER TABLE unit_rr_memory DROP COLUMN site_id, DROP COLUMN tenant_id, ADD PRIMARY KEY (unit_id);
ALTER TABLE authorizations DROP COLUMN tenant_id, ADD PRIMARY KEY (user_id, target_kind, target_id);
ALTER TABLE unit_residents DROP COLUMN site_id, DROP COLUMN tenant_id, ADD PRIMARY KEY (unit_id, user_id),
    ADD UNIQUE (unit_id, position);
ALTER TABLE units DROP COLUMN site_id, DROP COLUMN tenant_id, ADD PRIMARY KEY (id);
ALTER TABLE devices DROP COLUMN site_id, DROP COLUMN tenant_id, ADD PRIMARY KEY (sn);
ALTER TABLE users DROP COLUMN tenant_id, ADD PRIMARY KEY (id);
ALTER TABLE device_groups DROP COLUMN tenant_id, ADD PRIMARY KEY (id);
CREATE INDEX IF NOT EXISTS devices_group_id_idx ON devices (group_id);
CREATE INDEX IF NOT EXISTS unit_residents_user_id_idx ON unit_residents (user_id);
CREATE INDEX IF NOT EXISTS authorizations_target_idx ON authorizations (target_kind, target_id);
ALTER TABLE devices ADD FOREIGN KEY (group_id) REFERENCES device_groups (id) ON DELETE SET NULL;
ALTER TABLE unit_residents ADD FOREIGN KEY (unit_id) REFERENCES units (id) ON DELETE CASCADE;
ALTER TABLE unit_residents ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE authorizations ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE unit_rr_memory ADD FOREIGN KEY (unit_id) REFERENCES units (id) ON DELETE CASCADE;
ALTER TABLE unit_rr_memory ADD FOREIGN KEY (last_answered_user_id) REFERENCES users (id) ON DELETE SET NULL;
CREATE VIEW authorized_pairs AS
SELECT DISTINCT a.user_id, d.sn
FROM authorizations a
JOIN devices d
  ON (a.target_kind = 'device' AND a.target_id = d.sn)
  OR (a.target_kind = 'group' AND a.target_id = d.group_id);

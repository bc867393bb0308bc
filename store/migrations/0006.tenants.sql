-- depends: 0005.push_observability
-- Issue 9: tenants (a property-management company) own sites (a building or a campus).
-- Everything a tenant owns (directory, calls, pushes, webhooks, events) names its tenant;
-- those columns come in the migrations that depend on this one. Today's data belongs to the
-- 'default' tenant and its 'default' site, so a stack with no tenant setup keeps working.

CREATE TABLE tenants (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    -- a disabled tenant's keys and party tokens are refused; its data stays
    disabled_at  timestamptz NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text NOT NULL,
    -- IANA time zone name (quiet hours and schedules are in the site's local time)
    time_zone   text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');
INSERT INTO sites (tenant_id, id, name) VALUES ('default', 'default', 'Default site');

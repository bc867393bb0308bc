-- depends: 0011.media_nodes
-- Issue 10 item 4: a missed call's follow-up. The visitor snapshot is stored WITH the call
-- (the media bridge that decoded it may die, or be one of many), one JPEG per call, keyed by
-- tenant and the call's workflow id (tenant-qualified); and the call row says when its
-- follow-up window closes (NULL: no window).

CREATE TABLE call_snapshots (
    tenant_id  text NOT NULL,
    call_id    text NOT NULL,
    jpeg       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, call_id),
    CHECK (octet_length(jpeg) <= 4194304)
);

ALTER TABLE calls ADD COLUMN follow_up_until timestamptz NULL;

-- calls still ringing a unit (issue 10 item 3: a directory change reaches them)
CREATE INDEX calls_ringing_unit ON calls (tenant_id, unit_id) WHERE phase IN ('initiate', 'wait');

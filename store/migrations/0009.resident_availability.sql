-- depends: 0008.webhooks
-- Issue 11 item 5: a resident's own availability, set from the resident app (party token,
-- PUT/DELETE /v1/me/do-not-disturb), beside the property manager's users.do_not_disturb.
-- One row per user; issue 10 (quiet hours, away/available presence) adds its columns here.
-- No foreign key to users: the user's key may change with tenancy (issue 9); a row of a
-- deleted user is never read (the ring plan reads it only for a user it found).

CREATE TABLE user_availability (
    user_id      text PRIMARY KEY,
    -- do-not-disturb: on since dnd_since, until dnd_until (NULL = until switched off)
    dnd          boolean NOT NULL DEFAULT false,
    dnd_since    timestamptz NULL,
    dnd_until    timestamptz NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (dnd_until IS NULL OR dnd_since IS NULL OR dnd_until > dnd_since)
);

-- depends: 0009.resident_availability
-- Issue 10 items 1-2: a person's weekly quiet hours and presence (away with an optional
-- expiry), beside the manual do-not-disturb of 0009, in the same one-row-per-person table
-- (keyed by the tenant-qualified user id). The unit's quiet hours and who rings through
-- do-not-disturb are in the unit's policy (units.policy: quiet_hours, ring_through_dnd).
-- The rules are evaluated at the ring's instant by ringflow/availability.py; an expired away
-- is off whether or not its row was cleared.

ALTER TABLE user_availability
    -- away: since away_since, until away_until (NULL = until set back)
    ADD COLUMN away        boolean NOT NULL DEFAULT false,
    ADD COLUMN away_since  timestamptz NULL,
    ADD COLUMN away_until  timestamptz NULL,
    -- weekly quiet-hours rules (ringflow.contracts.availability.QuietHours), a JSON array
    ADD COLUMN quiet_hours jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD CONSTRAINT user_availability_away_check
        CHECK (away_until IS NULL OR away_since IS NULL OR away_until > away_since),
    ADD CONSTRAINT user_availability_quiet_hours_check CHECK (jsonb_typeof(quiet_hours) = 'array');

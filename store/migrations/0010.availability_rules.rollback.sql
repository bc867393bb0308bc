-- Rollback of 0010.availability_rules.
ALTER TABLE user_availability
    DROP CONSTRAINT IF EXISTS user_availability_quiet_hours_check,
    DROP CONSTRAINT IF EXISTS user_availability_away_check,
    DROP COLUMN IF EXISTS quiet_hours,
    DROP COLUMN IF EXISTS away_until,
    DROP COLUMN IF EXISTS away_since,
    DROP COLUMN IF EXISTS away;

-- Rollback of 0003.device_actions.
ALTER TABLE devices DROP COLUMN IF EXISTS actions;

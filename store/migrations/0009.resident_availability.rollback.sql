-- Rollback of 0009.resident_availability.
DROP TABLE IF EXISTS user_availability;

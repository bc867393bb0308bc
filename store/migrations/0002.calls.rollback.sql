-- Rollback of 0002.calls: drop every call table.
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS billing;
DROP TABLE IF EXISTS line_claims;
DROP TABLE IF EXISTS call_events;
DROP TABLE IF EXISTS attempts;
DROP TABLE IF EXISTS calls;

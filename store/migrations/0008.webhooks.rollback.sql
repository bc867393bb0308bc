-- Rollback of 0008.webhooks.
DROP TABLE IF EXISTS webhook_attempts;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_endpoints;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS event_sequences;

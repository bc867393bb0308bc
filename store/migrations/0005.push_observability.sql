-- depends: 0004.event_order
-- Issue 12 (metrics and traces). traceparent: the W3C trace context of the activity that wrote
-- the push (NULL when tracing is off), so that its delivery is a span of the call's trace.
-- outbox_unacked_at_idx: the push backlog gauges (count and oldest unacknowledged message)
-- read at every scrape from this small partial index.
ALTER TABLE outbox ADD COLUMN traceparent text;
CREATE INDEX outbox_unacked_at_idx ON outbox (at) WHERE acked_at IS NULL;

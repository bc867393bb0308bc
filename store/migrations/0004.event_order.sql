-- depends: 0003.device_actions
-- The order events were written in: events of one workflow task share their time (`at` is the
-- task's workflow time), and a building call's `escalated` is written with the next room's
-- ring, `callEnded` after the last room's finish. Reads order by (at, n).
ALTER TABLE call_events ADD COLUMN n bigserial;

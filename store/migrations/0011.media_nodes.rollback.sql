-- Rollback of 0011.media_nodes.
DROP TABLE IF EXISTS media_monitor_lease;
DROP TABLE IF EXISTS media_rooms;
DROP TABLE IF EXISTS media_nodes;

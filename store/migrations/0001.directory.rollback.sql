DROP TABLE IF EXISTS unit_rr_memory;
DROP VIEW IF EXISTS authorized_pairs;
DROP TABLE IF EXISTS authorizations;
DROP TABLE IF EXISTS unit_residents;
DROP TABLE IF EXISTS units;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS devices;
DROP TABLE IF EXISTS device_groups;

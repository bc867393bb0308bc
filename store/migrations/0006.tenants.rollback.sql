-- Rollback of 0006.tenants.
DROP TABLE IF EXISTS sites;
DROP TABLE IF EXISTS tenants;

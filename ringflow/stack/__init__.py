"""The embedded stack: Temporal dev server, PostgreSQL and ringflow's processes on one machine."""

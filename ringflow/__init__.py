"""ringflow: a durable call routing engine for hardware that calls people."""

"""PostgreSQL: the schema (versioned SQL migrations) and every query, in one place."""

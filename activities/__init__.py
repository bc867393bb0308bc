"""Side effects of the call workflows: PostgreSQL reads/writes, push outbox, media control."""

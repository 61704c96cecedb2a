"""PostgreSQL persistence: the only place SQL lives."""

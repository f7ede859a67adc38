"""Singer target for PostgreSQL."""

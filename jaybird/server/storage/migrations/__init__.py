"""Alembic migrations of the SQL storage schema (run by ``open_storage``; ``alembic`` CLI works too)."""

"""Alembic migrations of the project's databases (see README.md beside this file for the rules)."""

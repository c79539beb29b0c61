"""Postgres access: one module per table, and the change-and-publish rule (changes.py)."""

"""The users table."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from db.pool import Database
from db.rows import to_struct


class User(msgspec.Struct, frozen=True):
    """A person who owns projects."""

    id: UUID
    email: str
    created_at: datetime


class EmailTaken(Exception):
    """Another account already uses this email address."""


async def create_user(db: Database, email: str, password_hash: str) -> User:
    """Insert a user; raises EmailTaken when the address (any case) is in use."""
    try:
        row = await db.fetch_one(
            "INSERT INTO users (email, password_hash) VALUES (:email, :hash) "
            "RETURNING id, email, created_at",
            {"email": email, "hash": password_hash},
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken(email) from None
    return to_struct(User, row)


async def get_user_with_hash(db: Database, email: str) -> tuple[User, str] | None:
    """The user with this email (any case) and their password hash, or None."""
    row = await db.fetch_one(
        "SELECT id, email, created_at, password_hash FROM users WHERE lower(email) = lower(:email)",
        {"email": email},
    )
    if row is None:
        return None
    return to_struct(User, row), str(row["password_hash"])


async def get_user_by_email(db: Database, email: str) -> User | None:
    """The user with this email (any case), or None."""
    row = await db.fetch_one(
        "SELECT id, email, created_at FROM users WHERE lower(email) = lower(:email)",
        {"email": email},
    )
    return None if row is None else to_struct(User, row)

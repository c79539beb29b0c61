"""Every Redis key and channel name canvasflow uses, in one place."""

from __future__ import annotations

from uuid import UUID


def project_channel(namespace: str, project_id: UUID | str) -> str:
    """The pub/sub channel carrying one project's events."""
    return f"{namespace}:project:{project_id}"


def project_channel_prefix(namespace: str) -> str:
    """The prefix of every project channel, for parsing a channel back to its id."""
    return f"{namespace}:project:"


def queue_name(namespace: str) -> str:
    """The arq queue the web process enqueues into and workers read."""
    return f"{namespace}:queue"


def login_attempts_key(namespace: str, scope: str, subject: str) -> str:
    """The counter of recent login attempts for one account or one client address."""
    return f"{namespace}:login:{scope}:{subject}"

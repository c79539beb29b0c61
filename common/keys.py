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


def rate_limit_key(namespace: str, scope: str, subject: str) -> str:
    """A rate-limit counter or hold: `scope` names the limit (`login-pair`, `signup`, …),
    `subject` what it counts (a digest of an email and/or client address, never the email)."""
    return f"{namespace}:limit:{scope}:{subject}"


def presence_channel(namespace: str, project_id: UUID | str) -> str:
    """The pub/sub channel carrying one project's presence changes (a sibling of its events)."""
    return f"{namespace}:presence:{project_id}"


def presence_tabs_key(namespace: str, project_id: UUID | str) -> str:
    """The hash of every open tab's presence in one project, across web processes."""
    return f"{namespace}:presence:{project_id}:tabs"


def presence_alive_key(namespace: str, process_id: str) -> str:
    """A web process's heartbeat: while it exists, that process's presence tabs count."""
    return f"{namespace}:presence-alive:{process_id}"


def queue_ticker_key(namespace: str) -> str:
    """Held for one tick by the web process that publishes the queue's positions and ETAs."""
    return f"{namespace}:queue-ticker"

"""Wiring a node into a port of another, by the port rules, inside the change that makes it.

Every rule is checked under the project's lock (the change's seq bump holds
it), so two links racing into one port, or closing one cycle from both ends,
cannot both pass. Used by every route that creates connections (REST create
and paste), so the rules are written once (common/protocol/ports.py).
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

from common.protocol.entities import Connection
from common.protocol.ports import LinkError, LinkRefusal, check_link, default_port
from db import connections as q
from db.nodes import get_node
from db.pool import Database


class InvalidLink(Exception):
    """The link breaks a port rule; `error` says which and why."""

    def __init__(self, error: LinkError) -> None:
        super().__init__(error.message)
        self.error = error


class WrongEnd(Exception):
    """An end (`source` or `target`) is no node of the project."""

    def __init__(self, end: str) -> None:
        super().__init__(end)
        self.end = end


async def insert_checked(
    db: Database,
    project_id: UUID,
    source_id: UUID,
    target_id: UUID,
    target_port: str | None,
    *,
    version: int,
) -> Connection:
    """Insert the link if the rules allow it (into the first fitting port without one).

    Raises InvalidLink, WrongEnd, or db.connections.DuplicateConnection.
    """
    if source_id == target_id:
        raise InvalidLink(
            LinkError(reason=LinkRefusal.SELF_LINK, message="A node cannot feed itself.")
        )
    ends = []
    for end, node_id in (("source", source_id), ("target", target_id)):
        node = await get_node(db, node_id)
        if node is None or node.project_id != project_id:
            raise WrongEnd(end)
        ends.append(node)
    source, target = ends
    inputs = await q.inputs_of(db, target.id)
    if any(linked == source.id for _, linked in inputs):
        raise q.DuplicateConnection()
    links = dict(Counter(port for port, _ in inputs))
    port = target_port
    if port is None:
        chosen = default_port(source.type, target.type, links)
        if isinstance(chosen, LinkError):
            raise InvalidLink(chosen)
        port = chosen
    refused = check_link(source.type, target.type, port, links.get(port, 0))
    if refused is not None:
        raise InvalidLink(refused)
    if await q.reaches(db, target.id, source.id):
        raise InvalidLink(
            LinkError(
                reason=LinkRefusal.CYCLE,
                message="The target already feeds the source: this link would close a loop.",
            )
        )
    return await q.insert_connection(db, project_id, source.id, target.id, port, version=version)

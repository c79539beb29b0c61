"""Which node types take which inputs: the one table of ports, and the rules of a link.

A connection runs from a node's output into a named input port of its
target. Each node type declares its output kind and its input ports (kind,
how many links); the server checks every new connection against this table
inside the transaction that creates it, and the canvas reads the same table
from `GET /api/node-types` to draw labelled handles and refuse a bad drop
before it is sent. `python -m common.protocol.ports` prints it as JSON.

The rules (each refusal has a reason code, the `reason` of a 422
`invalid_connection`):
- `self_link`: a node cannot feed itself;
- `unknown_port`: the target type has no input port of that name;
- `no_port`: no port was named and none of the target's fits the source;
- `wrong_kind`: the source's output kind is not the port's kind;
- `port_full`: the port already holds its most links;
- `cycle`: the target already feeds the source (checked against the graph
  by the server, not by this module).
"""

from __future__ import annotations

import enum
import sys

import msgspec

from common.protocol.entities import NodeType


class PortKind(enum.StrEnum):
    """What travels along a link."""

    #: a prompt node's text
    TEXT = "text"
    #: an uploaded image, or an image node's active take
    IMAGE = "image"
    #: a video node's active take
    VIDEO = "video"


class Port(msgspec.Struct, frozen=True):
    """One named input of a node type."""

    name: str
    kind: PortKind
    #: how many links the port accepts
    max_links: int
    #: what the canvas writes beside the handle
    label: str


class NodeTypeSpec(msgspec.Struct, frozen=True):
    """A node type: what it outputs (None: nothing) and its input ports, in drawing order."""

    type: NodeType
    output: PortKind | None
    inputs: tuple[Port, ...] = ()


class LinkRefusal(enum.StrEnum):
    """Why a connection is refused: the `reason` of a 422 `invalid_connection`."""

    SELF_LINK = "self_link"
    UNKNOWN_PORT = "unknown_port"
    NO_PORT = "no_port"
    WRONG_KIND = "wrong_kind"
    PORT_FULL = "port_full"
    CYCLE = "cycle"


#: most reference images a video may be given (Veo 3.1: up to 3)
MAX_REFERENCES = 3

NODE_TYPES: dict[NodeType, NodeTypeSpec] = {
    NodeType.PROMPT: NodeTypeSpec(type=NodeType.PROMPT, output=PortKind.TEXT),
    NodeType.IMAGE: NodeTypeSpec(type=NodeType.IMAGE, output=PortKind.IMAGE),
    NodeType.IMAGE_GEN: NodeTypeSpec(
        type=NodeType.IMAGE_GEN,
        output=PortKind.IMAGE,
        inputs=(Port(name="prompt", kind=PortKind.TEXT, max_links=1, label="Prompt"),),
    ),
    NodeType.VIDEO: NodeTypeSpec(
        type=NodeType.VIDEO,
        output=PortKind.VIDEO,
        inputs=(
            Port(name="prompt", kind=PortKind.TEXT, max_links=1, label="Prompt"),
            Port(name="first_frame", kind=PortKind.IMAGE, max_links=1, label="First frame"),
            Port(name="last_frame", kind=PortKind.IMAGE, max_links=1, label="Last frame"),
            Port(
                name="references",
                kind=PortKind.IMAGE,
                max_links=MAX_REFERENCES,
                label="References",
            ),
            Port(name="extend", kind=PortKind.VIDEO, max_links=1, label="Extend"),
        ),
    ),
}


class LinkError(msgspec.Struct, frozen=True):
    """A refused link: the reason code and a sentence for people."""

    reason: LinkRefusal
    message: str


def port_of(node_type: NodeType, name: str) -> Port | None:
    """The input port `name` of `node_type`, or None."""
    return next((p for p in NODE_TYPES[node_type].inputs if p.name == name), None)


def check_link(
    source_type: NodeType, target_type: NodeType, port_name: str, links_in_port: int
) -> LinkError | None:
    """Why a link from a `source_type` node into `port_name` of a `target_type` node is refused.

    `links_in_port` is how many links the port already holds. None: the link fits.
    """
    port = port_of(target_type, port_name)
    if port is None:
        names = ", ".join(p.name for p in NODE_TYPES[target_type].inputs) or "none"
        return LinkError(
            reason=LinkRefusal.UNKNOWN_PORT,
            message=f"A {target_type} node has no input {port_name!r} (its inputs: {names}).",
        )
    output = NODE_TYPES[source_type].output
    if output != port.kind:
        return LinkError(
            reason=LinkRefusal.WRONG_KIND,
            message=f"{port_name} takes {port.kind}, and a {source_type} node gives "
            f"{output or 'nothing'}.",
        )
    if links_in_port >= port.max_links:
        most = "one link" if port.max_links == 1 else f"{port.max_links} links"
        return LinkError(
            reason=LinkRefusal.PORT_FULL,
            message=f"{port_name} takes at most {most}; remove one first.",
        )
    return None


def default_port(
    source_type: NodeType, target_type: NodeType, links: dict[str, int]
) -> str | LinkError:
    """The first port of the target that fits the source and has room (a body without a port)."""
    output = NODE_TYPES[source_type].output
    fitting = [p for p in NODE_TYPES[target_type].inputs if p.kind == output]
    for port in fitting:
        if links.get(port.name, 0) < port.max_links:
            return port.name
    if fitting:
        return LinkError(
            reason=LinkRefusal.PORT_FULL,
            message=f"Every input of this {target_type} node that takes {output} is full.",
        )
    return LinkError(
        reason=LinkRefusal.NO_PORT,
        message=f"A {target_type} node has no input for what a {source_type} node gives.",
    )


class NodeTypes(msgspec.Struct, frozen=True):
    """The body of GET /api/node-types: every node type with its ports."""

    node_types: list[NodeTypeSpec]


def node_types() -> NodeTypes:
    """The port table as the API and the JSON export send it."""
    return NodeTypes(node_types=list(NODE_TYPES.values()))


if __name__ == "__main__":
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(node_types()).decode()) + "\n")

"""What every generate route shares: the inputs of a node's ports, checks, submit and enqueue.

A generating node takes its inputs from its ports (common/protocol/ports.py):
each link's source gives what it holds now — a prompt node its text, an
image node its uploaded image, an image_gen or video node its active take.
A body may name an input explicitly instead; such a reference must be media
of this project (an upload, or a take), by key or by the URL the server gave
out, and is never fetched from anywhere else.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from redis.exceptions import RedisError

from common.protocol.entities import Node, NodeType
from db import connections as conn_q
from db import nodes as node_q
from db import takes as take_q
from db.jobs import GuardFailed, Job, NodeBusy
from db.lifecycle import submit_job
from db.uploads import get_project_upload
from db.users import User
from server.access import Action, authorize
from server.errors import ApiError, not_found
from server.state import AppState
from server.uploads import key_from_reference
from tasks.providers.base import InvalidRequest
from tasks.queue import enqueue_job
from tasks.storage.auto import media_url_prefixes

log = logging.getLogger(__name__)


class Media(msgspec.Struct, frozen=True, kw_only=True):
    """One media input: its key and type, and what the job records about where it came from."""

    key: str
    mime_type: str
    #: a take's params (an extension reads the source clip's resolution and duration)
    params: dict[str, Any] = {}
    #: where it came from: {"node_id", "take_id"} or {"reference"}
    origin: dict[str, Any] = {}


def refusal(exc: InvalidRequest) -> ApiError:
    """The 422 of a provider's refusal, with its own code (unsupported_duration, …)."""
    return ApiError(422, getattr(exc, "code", "unsupported_request"), str(exc))


async def project_media(
    state: AppState, project_id: Any, reference: str, field: str, kind: str
) -> Media:
    """The upload or take of this project that `reference` names, of `kind` (image, video)."""
    key = key_from_reference(
        reference, state.settings.public_url, media_url_prefixes(state.settings)
    )
    if key is not None:
        if kind == "image":
            upload = await get_project_upload(state.store.db, project_id, key)
            if upload is not None:
                return Media(key=upload.key, mime_type=upload.mime_type, origin={"key": key})
        take = await take_q.get_project_take_by_key(state.store.db, project_id, key)
        if take is not None and take.mime_type.startswith(f"{kind}/"):
            origin = {"take_id": str(take.id), "node_id": str(take.node_id)}
            return Media(
                key=take.media_key, mime_type=take.mime_type, params=take.params, origin=origin
            )
    raise ApiError(
        422,
        f"invalid_{field}",
        f"{field} must name {'an image' if kind == 'image' else 'a video'} of this project "
        "(an upload or a take: its key, or the media URL the server gave).",
    )


def _missing(port: str, source: Node, what: str) -> ApiError:
    return ApiError(
        422,
        "input_missing",
        f"The {port} input is a {source.type} node with no {what} yet: "
        f"{'write one' if what == 'text' else 'make or choose one'} first.",
        port=port,
        node_id=str(source.id),
    )


async def _media_of(state: AppState, port: str, source: Node) -> Media:
    """What an image or video source gives now: an upload, or its active take."""
    db = state.store.db
    if source.type == NodeType.IMAGE:
        key = source.data.get("image_key")
        upload = await get_project_upload(db, source.project_id, key) if key else None
        if upload is None:
            raise _missing(port, source, "image")
        return Media(key=upload.key, mime_type=upload.mime_type, origin={"node_id": str(source.id)})
    take = await take_q.get_take(db, source.active_take_id) if source.active_take_id else None
    if take is None:
        raise _missing(port, source, "take")
    origin = {"node_id": str(source.id), "take_id": str(take.id)}
    return Media(key=take.media_key, mime_type=take.mime_type, params=take.params, origin=origin)


class PortInputs(msgspec.Struct, kw_only=True):
    """A node's inputs as its ports give them now."""

    prompt: str | None = None
    prompt_origin: dict[str, Any] = {}
    media: dict[str, list[Media]] = {}
    #: ports whose source has nothing yet: refused only when the body does not name the input
    missing: dict[str, ApiError] = {}

    def port(self, name: str) -> list[Media]:
        """The media of port `name`; 422 `input_missing` if a source of it has none."""
        if name in self.missing:
            raise self.missing[name]
        return self.media.get(name) or []


async def port_inputs(state: AppState, node: Node) -> PortInputs:
    """Read every link into `node`: the prompt's text and each media port's media, in link order."""
    found = PortInputs(media={}, missing={})
    for port, source_id in await conn_q.inputs_of(state.store.db, node.id):
        source = await node_q.get_node(state.store.db, source_id)
        if source is None:
            continue
        if source.type == NodeType.PROMPT:
            text = source.data.get("prompt")
            if not isinstance(text, str) or not text.strip():
                found.missing[port] = _missing(port, source, "text")
                continue
            found.prompt, found.prompt_origin = text, {"node_id": str(source.id)}
            continue
        try:
            found.media.setdefault(port, []).append(await _media_of(state, port, source))
        except ApiError as exc:
            found.missing.setdefault(port, exc)
    return found


def prompt_from(body_prompt: str | None, inputs: PortInputs) -> str:
    """The body's prompt, else the prompt port's; 422 when there is neither."""
    if body_prompt is None and "prompt" in inputs.missing:
        raise inputs.missing["prompt"]
    prompt = body_prompt if body_prompt is not None else inputs.prompt
    if prompt is None:
        raise ApiError(
            422, "missing_prompt", "Send a prompt, or connect a prompt node to the prompt input."
        )
    if not prompt.strip():
        raise ApiError(422, "invalid_prompt", "prompt must contain more than white space.")
    return prompt


async def submit_and_enqueue(
    state: AppState, node: Node, job_type: str, params: dict[str, Any], user: User
) -> Job:
    """Save `user`'s job (node processing, `job.created`), then enqueue its id; 409 while one runs.

    The user's right to edit is checked again inside the change, under the project's lock:
    a removal that committed meanwhile wins.
    """
    store, settings = state.store, state.settings
    try:
        job, _ = await submit_job(
            store,
            node,
            job_type,
            params,
            settings.job_timeout_s,
            created_by=user.id,
            guard=lambda: authorize(store, user.id, node.project_id, Action.EDIT, "node"),
        )
    except NodeBusy as busy:
        raise ApiError(
            409,
            "job_in_progress",
            "This node is already generating; cancel that job or wait for it.",
            job_id=str(busy.job_id),
        ) from None
    except GuardFailed:
        raise not_found("node") from None
    try:
        await enqueue_job(state.queue, settings.namespace, job.type, job.id)
    except (RedisError, OSError, TimeoutError) as exc:
        # the row is durable; the sweeper enqueues pending jobs the queue does not hold
        log.warning("enqueue of job %s failed, the sweeper will retry: %s", job.id, exc)
    return job

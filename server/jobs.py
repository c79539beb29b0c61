"""Generation jobs: submit (generate-video), its estimate, read one, the latest of a node, cancel.

Submitting writes the job row first (one change with the node going to
processing), then enqueues the job id with arq (server/generation.py). If Redis is down the job is
still answered 202: it is safe in Postgres, and the sweeper enqueues it once
Redis is back.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import JobStatusResponse
from common.protocol.ports import MAX_REFERENCES
from db.jobs import (
    FINAL_STATUSES,
    GuardFailed,
    Job,
    get_job,
    latest_job_for_node,
)
from db.lifecycle import cancel_job as cancel
from db.nodes import Node, NodeType
from db.users import User
from server.access import Action, authorize, job_for, node_for
from server.auth import require_user
from server.bodies import decode_body, has_visible_text, path_uuid
from server.errors import ApiError
from server.generation import (
    Estimate,
    Media,
    estimate_of,
    generate_response,
    port_inputs,
    present_job,
    project_media,
    prompt_from,
    refusal,
)
from server.inputs import MAX_PROMPT_CHARS
from server.openapi import api
from server.responses import json_response
from server.state import AppState, app_state
from tasks.providers.base import InvalidRequest
from tasks.queue import abort_job
from tasks.video import JOB_TYPE, video_request

log = logging.getLogger(__name__)

Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]
Reference = Annotated[str, msgspec.Meta(max_length=2048)]


class GenerateVideoRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/ai/generate-video; inputs not named come from the node's ports."""

    node_id: UUID
    resolution: Literal["720p", "1080p"]
    duration: Literal[4, 6, 8]
    aspect_ratio: Literal["16:9", "9:16"]
    #: else the prompt port's text
    prompt: Prompt | None = None
    #: the first frame: media of this project (an upload or an image take), key or URL
    image_url: Reference | None = None
    last_frame_url: Reference | None = None
    reference_urls: Annotated[list[Reference], msgspec.Meta(max_length=MAX_REFERENCES)] | None = (
        None
    )
    #: a video take of this project to continue
    extend_url: Reference | None = None
    negative_prompt: Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)] | None = None
    generate_audio: bool = False
    number_of_videos: Annotated[int, msgspec.Meta(ge=1, le=4)] = 1
    enhance_prompt: bool | None = None
    person_generation: Literal["dont_allow", "allow_adult"] | None = None


async def _video_params(
    state: AppState, node: Node, user: User, body: GenerateVideoRequest
) -> dict[str, Any]:
    """The job's params: the body's choices and each input, from the body or the ports."""
    ports = await port_inputs(state, node)
    inputs: dict[str, Any] = {}
    if body.prompt is None and ports.prompt is not None:
        inputs["prompt"] = ports.prompt_origin
    params: dict[str, Any] = {
        "prompt": prompt_from(body.prompt, ports),
        "resolution": body.resolution,
        "duration": body.duration,
        "aspect_ratio": body.aspect_ratio,
        "negative_prompt": body.negative_prompt,
        "seed": body.seed,
        "generate_audio": body.generate_audio,
        "number_of_videos": body.number_of_videos,
        "enhance_prompt": body.enhance_prompt,
        "person_generation": body.person_generation,
        "author_id": str(user.id),
    }
    pid = node.project_id

    async def one(field: str, port: str, reference: str | None, kind: str) -> Media | None:
        if reference is not None:
            return await project_media(state, pid, reference, field, kind)
        found = ports.port(port)
        return found[0] if found else None

    first = await one("image_url", "first_frame", body.image_url, "image")
    last = await one("last_frame_url", "last_frame", body.last_frame_url, "image")
    extend = await one("extend_url", "extend", body.extend_url, "video")
    if body.reference_urls is not None:
        refs = [
            await project_media(state, pid, r, "reference_urls", "image")
            for r in body.reference_urls
        ]
    else:
        refs = ports.port("references")
    if first is not None:
        params.update(image_key=first.key, image_mime_type=first.mime_type)
        inputs["first_frame"] = first.origin
    if last is not None:
        params.update(last_frame_key=last.key, last_frame_mime_type=last.mime_type)
        inputs["last_frame"] = last.origin
    if refs:
        params["reference_keys"] = [m.key for m in refs]
        params["reference_mime_types"] = [m.mime_type for m in refs]
        inputs["references"] = [m.origin for m in refs]
    if extend is not None:
        duration = extend.params.get("duration")
        if not isinstance(duration, int):
            raise ApiError(422, "invalid_extend_url", "The clip to extend has no known length.")
        params.update(
            extend_key=extend.key,
            extend_resolution=extend.params.get("resolution", "720p"),
            extend_duration=duration,
        )
        inputs["extend"] = extend.origin
    params["inputs"] = inputs
    return params


async def _present(request: Request, job: Job) -> JobStatusResponse:
    return await present_job(app_state(request), job)


async def _video_request(
    request: Request,
) -> tuple[User, Node, GenerateVideoRequest]:
    """The caller, the video node they may edit, and the body: what generate and estimate share."""
    user = await require_user(request)
    body = await decode_body(request, GenerateVideoRequest)
    if body.prompt is not None and not has_visible_text(body.prompt):
        raise ApiError(422, "invalid_prompt", "prompt must contain a visible character.")
    node = await node_for(app_state(request).store, user, body.node_id, Action.EDIT)
    if node.type != NodeType.VIDEO:
        message = f"node_id names a {node.type} node; videos are generated into video nodes."
        raise ApiError(422, "not_a_video_node", message)
    return user, node, body


async def _checked_params(
    request: Request, user: User, node: Node, body: GenerateVideoRequest
) -> dict[str, Any]:
    """The job's params, refused (422) as the provider would refuse them."""
    state = app_state(request)
    params = await _video_params(state, node, user, body)
    # the inputs' bytes stay in storage until the worker runs; their types are enough to check
    try:
        state.provider.check(video_request(params))
    except InvalidRequest as exc:
        raise refusal(exc) from None
    return params


@api(
    "Generate a video into a video node",
    body=GenerateVideoRequest,
    response=JobStatusResponse,
    status=202,
    errors=[402, 403, 404, 409],
)
async def generate_video(request: Request) -> Response:
    """POST /api/ai/generate-video: save the job, enqueue its id, answer 202 with the job.

    With an Idempotency-Key already used for this body: 200 with the job it made.
    """
    user, node, body = await _video_request(request)
    return await generate_response(
        request, user, node, body, JOB_TYPE, lambda: _checked_params(request, user, node, body)
    )


@api(
    "What generating this video would cost",
    body=GenerateVideoRequest,
    response=Estimate,
    errors=[403, 404],
)
async def estimate_video(request: Request) -> Response:
    """POST /api/ai/estimate: the cost of the generate-video body, and the budget left."""
    user, node, body = await _video_request(request)
    params = await _checked_params(request, user, node, body)
    return json_response(await estimate_of(app_state(request), user, JOB_TYPE, params))


@api("A generation job", response=JobStatusResponse)
async def get_job_status(request: Request) -> Response:
    """GET /api/ai/jobs/{job_id}: the job, its video URL signed now."""
    user = await require_user(request)
    job = await job_for(app_state(request).store, user, path_uuid(request, "job_id"), Action.READ)
    return json_response(await _present(request, job))


@api("The latest job of a node", response=JobStatusResponse)
async def latest_job(request: Request) -> Response:
    """GET /api/ai/nodes/{node_id}/jobs/latest: 404 `job_not_found` when it has none."""
    user = await require_user(request)
    store = app_state(request).store
    node = await node_for(store, user, path_uuid(request, "node_id"), Action.READ)
    job = await latest_job_for_node(store.db, node.id)
    if job is None:
        raise ApiError(404, "job_not_found", "This node has no jobs yet.")
    return json_response(await _present(request, job))


def _finished(job: Job) -> ApiError:
    return ApiError(
        409, "job_finished", f"The job is already {job.status.value}; nothing to cancel."
    )


@api("Cancel a pending or processing job", response=JobStatusResponse, errors=[403, 409])
async def cancel_job(request: Request) -> Response:
    """POST /api/ai/jobs/{job_id}/cancel: job cancelled, node idle, the worker told to stop."""
    user = await require_user(request)
    state = app_state(request)
    store = state.store
    job = await job_for(store, user, path_uuid(request, "job_id"), Action.EDIT)
    if job.status in FINAL_STATUSES:
        raise _finished(job)
    try:
        cancelled = await cancel(
            store, job, guard=lambda: authorize(store, user.id, job.project_id, Action.EDIT, "job")
        )
    except GuardFailed:
        # it finished between our read and the guarded UPDATE
        current = await get_job(store.db, job.id)
        raise _finished(current or job) from None
    # the row is final already; a worker that misses the abort finds its guarded writes refused
    await abort_job(state.queue, state.settings.namespace, job.id)
    return json_response(await _present(request, cancelled))

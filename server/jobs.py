"""Generation jobs: submit (generate-video), read one, the latest of a node, cancel.

Submitting writes the job row first (one change with the node going to
processing), then enqueues the job id with arq. If Redis is down the job is
still answered 202: it is safe in Postgres, and the sweeper enqueues it once
Redis is back.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import JobStatusResponse
from db.changes import Store
from db.jobs import (
    FINAL_STATUSES,
    GuardFailed,
    Job,
    NodeBusy,
    get_job,
    job_view,
    latest_job_for_node,
)
from db.lifecycle import cancel_job as cancel
from db.lifecycle import submit_job
from db.nodes import NodeType
from db.projects import get_owned_project
from db.users import User
from server.access import owned_node
from server.auth import require_user
from server.bodies import decode_body, has_visible_text, path_uuid
from server.errors import ApiError, not_found
from server.inputs import MAX_PROMPT_CHARS
from server.openapi import api
from server.responses import json_response
from server.state import app_state
from server.uploads import project_image
from tasks.providers.base import InvalidRequest
from tasks.queue import abort_job, enqueue_job
from tasks.video import JOB_TYPE, video_request

log = logging.getLogger(__name__)

Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]


class GenerateVideoRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/ai/generate-video."""

    node_id: UUID
    prompt: Prompt
    resolution: Literal["720p", "1080p"]
    duration: Literal[4, 6, 8]
    aspect_ratio: Literal["16:9", "9:16"]
    #: an image this project uploaded: its key, or the media URL the upload returned
    image_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    negative_prompt: Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)] | None = None
    generate_audio: bool = False


async def _present(request: Request, job: Job) -> JobStatusResponse:
    return await app_state(request).presenter.job(job_view(job))


async def _owned_job(store: Store, user: User, job_id: UUID) -> Job:
    """A job of one of the caller's projects, or 404 `job_not_found`."""
    job = await get_job(store.db, job_id)
    if job is None or await get_owned_project(store.db, job.project_id, user.id) is None:
        raise not_found("job")
    return job


@api(
    "Generate a video into a video node",
    body=GenerateVideoRequest,
    response=JobStatusResponse,
    status=202,
    errors=[403, 404, 409],
)
async def generate_video(request: Request) -> Response:
    """POST /api/ai/generate-video: save the job, enqueue its id, answer 202 with the job."""
    user = await require_user(request)
    body = await decode_body(request, GenerateVideoRequest)
    if not has_visible_text(body.prompt):
        raise ApiError(422, "invalid_prompt", "prompt must contain a visible character.")
    state = app_state(request)
    store, settings = state.store, state.settings
    node = await owned_node(store, user, body.node_id)
    if node.type != NodeType.VIDEO:
        message = f"node_id names a {node.type} node; videos are generated into video nodes."
        raise ApiError(422, "not_a_video_node", message)
    params: dict[str, Any] = {
        "prompt": body.prompt,
        "resolution": body.resolution,
        "duration": body.duration,
        "aspect_ratio": body.aspect_ratio,
        "negative_prompt": body.negative_prompt,
        "seed": body.seed,
        "generate_audio": body.generate_audio,
    }
    if body.image_url is not None:
        # only a key of this project's uploads is kept: the worker reads storage, never a URL
        upload = await project_image(store, settings, node.project_id, body.image_url, "image_url")
        params["image_key"] = upload.key
        params["image_mime_type"] = upload.mime_type
    provider = state.provider
    # the image's bytes stay in storage until the worker runs; its type is enough to check
    to_check = msgspec.structs.replace(
        video_request(params), image_mime_type=params.get("image_mime_type")
    )
    try:
        provider.check(to_check)
    except InvalidRequest as exc:
        # capability refusals carry their own code (unsupported_duration, …)
        raise ApiError(422, getattr(exc, "code", "unsupported_request"), str(exc)) from None

    try:
        job, _ = await submit_job(store, node, JOB_TYPE, params, settings.job_timeout_s)
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
    return json_response(await _present(request, job), 202)


@api("A generation job", response=JobStatusResponse)
async def get_job_status(request: Request) -> Response:
    """GET /api/ai/jobs/{job_id}: the job, its video URL signed now."""
    user = await require_user(request)
    job = await _owned_job(app_state(request).store, user, path_uuid(request, "job_id"))
    return json_response(await _present(request, job))


@api("The latest job of a node", response=JobStatusResponse)
async def latest_job(request: Request) -> Response:
    """GET /api/ai/nodes/{node_id}/jobs/latest: 404 `job_not_found` when it has none."""
    user = await require_user(request)
    store = app_state(request).store
    node = await owned_node(store, user, path_uuid(request, "node_id"))
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
    job = await _owned_job(store, user, path_uuid(request, "job_id"))
    if job.status in FINAL_STATUSES:
        raise _finished(job)
    try:
        cancelled = await cancel(store, job)
    except GuardFailed:
        # it finished between our read and the guarded UPDATE
        current = await get_job(store.db, job.id)
        raise _finished(current or job) from None
    # the row is final already; a worker that misses the abort finds its guarded writes refused
    await abort_job(state.queue, state.settings.namespace, job.id)
    return json_response(await _present(request, cancelled))

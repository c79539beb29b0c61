"""Image generation into image_gen nodes: POST /api/ai/generate-image.

The same job life cycle as videos (db/lifecycle.py), the same queue and
sweeper; the worker's job is tasks/image.py. Each image becomes a take of
the node, and the node's active take feeds the image ports of video nodes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.protocol.entities import JobStatusResponse, NodeType
from db.jobs import job_view
from server.access import Action, node_for
from server.auth import require_user
from server.bodies import decode_body
from server.errors import ApiError
from server.generation import port_inputs, prompt_from, refusal, submit_and_enqueue
from server.inputs import MAX_PROMPT_CHARS
from server.openapi import api
from server.responses import json_response
from server.state import app_state
from tasks.image import JOB_TYPE, image_request
from tasks.providers.base import InvalidRequest
from tasks.providers.images import MAX_IMAGES

AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]


class GenerateImageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /api/ai/generate-image; without `prompt` the prompt port's text is used."""

    node_id: UUID
    aspect_ratio: AspectRatio
    number_of_images: Annotated[int, msgspec.Meta(ge=1, le=MAX_IMAGES)] = 1
    prompt: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMPT_CHARS)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)] | None = None
    image_size: Literal["1K", "2K", "4K"] = "1K"


@api(
    "Generate images into an image_gen node",
    body=GenerateImageRequest,
    response=JobStatusResponse,
    status=202,
    errors=[403, 404, 409],
)
async def generate_image(request: Request) -> Response:
    """POST /api/ai/generate-image: save the job, enqueue its id, answer 202 with the job."""
    user = await require_user(request)
    body = await decode_body(request, GenerateImageRequest)
    state = app_state(request)
    node = await node_for(state.store, user, body.node_id, Action.EDIT)
    if node.type != NodeType.IMAGE_GEN:
        message = f"node_id names a {node.type} node; images are generated into image_gen nodes."
        raise ApiError(422, "not_an_image_gen_node", message)
    ports = await port_inputs(state, node)
    params: dict[str, Any] = {
        "prompt": prompt_from(body.prompt, ports),
        "aspect_ratio": body.aspect_ratio,
        "number_of_images": body.number_of_images,
        "seed": body.seed,
        "image_size": body.image_size,
        "author_id": str(user.id),
        "inputs": {"prompt": ports.prompt_origin} if body.prompt is None else {},
    }
    try:
        state.image_provider.check(image_request(params))
    except InvalidRequest as exc:
        raise refusal(exc) from None
    job = await submit_and_enqueue(state, node, JOB_TYPE, params, user)
    return json_response(await state.presenter.job(job_view(job)), 202)

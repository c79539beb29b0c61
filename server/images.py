"""Image generation into image_gen nodes: POST /api/ai/generate-image, and its estimate.

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

from common.protocol.entities import JobStatusResponse, Node, NodeType
from db.users import User
from server.access import Action, node_for
from server.auth import require_user
from server.bodies import decode_body
from server.errors import ApiError
from server.generation import (
    Estimate,
    estimate_of,
    generate_response,
    port_inputs,
    prompt_from,
    refusal,
)
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


async def _image_request(request: Request) -> tuple[User, Node, GenerateImageRequest]:
    """The caller, the image_gen node they may edit, and the body (generate and estimate)."""
    user = await require_user(request)
    body = await decode_body(request, GenerateImageRequest)
    node = await node_for(app_state(request).store, user, body.node_id, Action.EDIT)
    if node.type != NodeType.IMAGE_GEN:
        message = f"node_id names a {node.type} node; images are generated into image_gen nodes."
        raise ApiError(422, "not_an_image_gen_node", message)
    return user, node, body


async def _image_params(
    request: Request, user: User, node: Node, body: GenerateImageRequest
) -> dict[str, Any]:
    """The job's params, refused (422) as the provider would refuse them."""
    state = app_state(request)
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
    return params


@api(
    "Generate images into an image_gen node",
    body=GenerateImageRequest,
    response=JobStatusResponse,
    status=202,
    errors=[402, 403, 404, 409],
)
async def generate_image(request: Request) -> Response:
    """POST /api/ai/generate-image: save the job, enqueue its id, answer 202 with the job.

    With an Idempotency-Key already used for this body: 200 with the job it made.
    """
    user, node, body = await _image_request(request)
    return await generate_response(
        request, user, node, body, JOB_TYPE, lambda: _image_params(request, user, node, body)
    )


@api(
    "What generating these images would cost",
    body=GenerateImageRequest,
    response=Estimate,
    errors=[403, 404],
)
async def estimate_image(request: Request) -> Response:
    """POST /api/ai/estimate-image: the cost of the generate-image body, and the budget left."""
    user, node, body = await _image_request(request)
    params = await _image_params(request, user, node, body)
    return json_response(await estimate_of(app_state(request), user, JOB_TYPE, params))

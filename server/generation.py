"""What every generate route shares: the inputs of a node's ports, checks, submit and enqueue.

A generating node takes its inputs from its ports (common/protocol/ports.py):
each link's source gives what it holds now — a prompt node its text, an
image node its uploaded image, an image_gen or video node its active take.
A body may name an input explicitly instead; such a reference must be media
of this project (an upload, or a take), by key or by the URL the server gave
out, and is never fetched from anywhere else.

Every request has a price (common/prices.py, the settings' table) that the
estimate routes answer with and that submit reserves on the user's budget in
the change that creates the job (db/budgets.py); an `Idempotency-Key` header
makes a repeated submit answer with the job the first one made
(db/idempotency.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from common.prices import ANY_MODEL, CURRENCY, EXTENSION_SECONDS, UnknownPrice, to_amount
from common.protocol.entities import JobStatusResponse, Node, NodeType
from db import connections as conn_q
from db import nodes as node_q
from db import takes as take_q
from db.budgets import Budget, BudgetExceeded, usage_of
from db.estimates import duration_key, queue_figures
from db.idempotency import Claim, KeyTaken, find_key
from db.jobs import GuardFailed, Job, NodeBusy, get_job, job_view
from db.lifecycle import submit_job
from db.uploads import get_project_upload
from db.users import User
from server.access import Action, authorize
from server.errors import ApiError, not_found
from server.responses import json_response
from server.state import AppState, app_state
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


class Estimate(msgspec.Struct, frozen=True):
    """What a request would cost, and what the caller's budget has left (None: no limit)."""

    cost: float
    currency: str
    budget_remaining: float | None


#: the longest Idempotency-Key accepted
MAX_IDEMPOTENCY_KEY = 255


def _provider_of(state: AppState, job_type: str) -> tuple[str, str]:
    provider: object = state.image_provider if job_type == "image" else state.provider
    return str(getattr(provider, "name", "")), str(getattr(provider, "model", ANY_MODEL))


def request_cost(state: AppState, job_type: str, params: dict[str, Any]) -> int:
    """What a job of `params` costs by the price table, in micro-units."""
    provider, model = _provider_of(state, job_type)
    prices = state.settings.prices
    try:
        if job_type == "image":
            return prices.image_micros(
                provider,
                model,
                images=int(params.get("number_of_images") or 1),
                size=str(params.get("image_size") or "1K"),
            )
        # an extension is billed for the seconds it adds, not for the clip it continues
        seconds = EXTENSION_SECONDS if params.get("extend_key") else int(params["duration"])
        return prices.video_micros(
            provider,
            model,
            seconds=seconds,
            videos=int(params.get("number_of_videos") or 1),
            audio=bool(params.get("generate_audio")),
        )
    except UnknownPrice as exc:
        raise ApiError(422, "price_unknown", str(exc)) from None


def budget_of(state: AppState, user: User) -> Budget:
    """The budget `user` spends from, by the settings."""
    settings = state.settings
    return Budget(user_id=user.id, limit=settings.budget_micros, period=settings.budget_period)


async def estimate_of(
    state: AppState, user: User, job_type: str, params: dict[str, Any]
) -> Estimate:
    """The cost of a job of `params`, and what `user`'s budget has left now."""
    cost = request_cost(state, job_type, params)
    usage = await usage_of(state.store.db, budget_of(state, user))
    remaining = usage.remaining
    return Estimate(
        cost=to_amount(cost),
        currency=CURRENCY,
        budget_remaining=None if remaining is None else to_amount(remaining),
    )


def idempotency_claim(
    request: Request, user: User, job_type: str, body: msgspec.Struct
) -> Claim | None:
    """The request's Idempotency-Key with the hash of what it asks for; None without the header."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
        )
    digest = hashlib.sha256(job_type.encode() + b"\n" + msgspec.json.encode(body)).hexdigest()
    return Claim(user_id=user.id, key=key, request_hash=digest)


async def replay_of(state: AppState, claim: Claim) -> Job | None:
    """The job an earlier request with this key made; 422 if it asked for something else."""
    held = await find_key(state.store.db, claim.user_id, claim.key)
    if held is None:
        return None
    if held.request_hash != claim.request_hash:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used (in the last 24 h) for a different request; "
            "use a new key for a new request.",
        )
    job = await get_job(state.store.db, held.job_id) if held.job_id is not None else None
    if job is None:
        # the job went with its node or project: the key has nothing left to answer with
        raise not_found("job")
    return job


async def present_job(state: AppState, job: Job) -> JobStatusResponse:
    """The job as clients see it now: URLs signed, queue position and ETA read."""
    figures = await queue_figures(state.store.db, [job], state.settings.worker_max_jobs)
    return await state.presenter.job(job_view(job, figures.get(job.id)))


async def submit_and_enqueue(
    state: AppState,
    node: Node,
    job_type: str,
    params: dict[str, Any],
    user: User,
    claim: Claim | None = None,
) -> tuple[Job, bool]:
    """Save `user`'s job (node processing, `job.created`), then enqueue its id; 409 while one runs.

    The job's cost is reserved on the user's budget in the same change (402 when it does
    not fit). Returns the job and whether it is the one an earlier request with the same
    Idempotency-Key (`claim`) made, which is answered again instead of a new one.
    The user's right to edit is checked again inside the change, under the project's lock:
    a removal that committed meanwhile wins.
    """
    store, settings = state.store, state.settings
    cost = request_cost(state, job_type, params)
    budget = budget_of(state, user)
    provider, model = _provider_of(state, job_type)
    try:
        job, _ = await submit_job(
            store,
            node,
            job_type,
            params,
            settings.job_timeout_s,
            created_by=user.id,
            guard=lambda: authorize(store, user.id, node.project_id, Action.EDIT, "node"),
            cost=cost,
            budget=budget,
            duration_key=duration_key(job_type, provider, model, params),
            idempotency=claim,
        )
    except KeyTaken:
        # a concurrent request with the same key committed first: answer with its job
        assert claim is not None
        replayed = await replay_of(state, claim)
        if replayed is None:
            raise not_found("job") from None
        return replayed, True
    except BudgetExceeded as over:
        raise _over_budget(state, over) from None
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
    return job, False


def _over_budget(state: AppState, over: BudgetExceeded) -> ApiError:
    """402 `budget_exceeded`, saying what the request costs and what remains."""
    cost, remaining = to_amount(over.cost), to_amount(over.remaining)
    period = state.settings.budget_period
    return ApiError(
        402,
        "budget_exceeded",
        f"This costs {cost:g} {CURRENCY} and your budget has {remaining:g} {CURRENCY} left "
        f"this {period}: choose something cheaper, or wait for the next {period}.",
        cost=cost,
        budget_remaining=remaining,
        currency=CURRENCY,
    )


async def generate_response(
    request: Request,
    user: User,
    node: Node,
    body: msgspec.Struct,
    job_type: str,
    make_params: Callable[[], Awaitable[dict[str, Any]]],
) -> Response:
    """What every generate route answers: the job an Idempotency-Key already made (200), else
    the checked params submitted and enqueued (202; 200 when a concurrent twin won the key)."""
    state = app_state(request)
    claim = idempotency_claim(request, user, job_type, body)
    if claim is not None and (earlier := await replay_of(state, claim)) is not None:
        return json_response(await present_job(state, earlier), 200)
    params = await make_params()
    job, replayed = await submit_and_enqueue(state, node, job_type, params, user, claim)
    return json_response(await present_job(state, job), 200 if replayed else 202)

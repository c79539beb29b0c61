"""The caller's money: GET /api/me/usage — spent, reserved and remaining this budget period."""

from __future__ import annotations

from datetime import datetime

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from common.prices import CURRENCY, to_amount
from db.budgets import usage_of
from server.auth import require_user
from server.generation import budget_of
from server.openapi import api
from server.responses import json_response
from server.state import app_state


class UsageResponse(msgspec.Struct, frozen=True):
    """One user's budget in the current period; `budget` and `remaining` are None when unlimited."""

    #: "day", "week" or "month" (UTC)
    period: str
    period_start: datetime
    #: settled: what finished jobs cost
    spent: float
    #: held by pending and running jobs until they end
    reserved: float
    remaining: float | None
    budget: float | None
    currency: str


@api("The caller's spending in the current budget period", response=UsageResponse)
async def get_usage(request: Request) -> Response:
    """GET /api/me/usage: spent, reserved and remaining of the caller's budget."""
    user = await require_user(request)
    state = app_state(request)
    usage = await usage_of(state.store.db, budget_of(state, user))
    remaining = usage.remaining
    return json_response(
        UsageResponse(
            period=usage.period,
            period_start=usage.period_start,
            spent=to_amount(usage.spent),
            reserved=to_amount(usage.reserved),
            remaining=None if remaining is None else to_amount(remaining),
            budget=None if usage.limit is None else to_amount(usage.limit),
            currency=CURRENCY,
        )
    )

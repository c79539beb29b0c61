"""Budgets and their ledger: reserve at submit, settle or release once when a job ends.

A user's budget for one period is one row of `budgets` (spent, reserved). A
submit reserves the job's estimated cost with ONE guarded UPDATE of that row,
inside the change that creates the job row (db/lifecycle.py `submit_job`):
the UPDATE locks the row, so concurrent submits queue on it and each sees the
others' reservations; the guard `spent + reserved + cost <= limit` refuses
the one that would overspend, and the CHECKs keep both sums at 0 or more.

A job's terminal transition (COMPLETE, FAIL, CANCEL) closes its reservation
in the same transaction, guarded by the job's status (the transition happens
once) and again by the ledger's primary key (job_id, entry): a second close
of the same job inserts nothing and so moves no money. Completion settles
(spent += final cost, reserved -= reserved); failure, cancel and a safety
block release (reserved -= reserved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from common.metrics import BUDGET_MONEY
from common.prices import to_amount
from db.pool import Database

#: Postgres date_trunc units of the budget periods of common/config.py
_TRUNC = {"day": "day", "week": "week", "month": "month"}


class BudgetExceeded(Exception):
    """The reservation would take the user past their budget: nothing was reserved."""

    def __init__(self, cost: int, remaining: int) -> None:
        super().__init__(f"cost {cost} above the {remaining} remaining")
        self.cost = cost
        self.remaining = remaining


@dataclass(frozen=True)
class Budget:
    """Whose budget a submit draws on, and its limit (None: unlimited) per `period`."""

    user_id: UUID
    limit: int | None
    period: str


@dataclass(frozen=True)
class Usage:
    """One user's money in the current period, in micro-units."""

    period: str
    period_start: datetime
    spent: int
    reserved: int
    limit: int | None

    @property
    def remaining(self) -> int | None:
        """What may still be reserved (None: no limit); never below 0."""
        if self.limit is None:
            return None
        return max(0, self.limit - self.spent - self.reserved)


def _period_start_sql(period: str) -> str:
    # UTC, whatever the server's time zone: one period boundary for every process
    unit = _TRUNC[period]
    return f"(date_trunc('{unit}', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


async def reserve(db: Database, job_id: UUID, budget: Budget, cost: int) -> None:
    """Reserve `cost` for `job_id` on the budget's current period; BudgetExceeded if it won't fit.

    Call inside the change that inserts the job (the job row must exist for the ledger).
    """
    start = _period_start_sql(budget.period)
    await db.execute(
        f"INSERT INTO budgets (user_id, period_start) VALUES (:u, {start}) "
        "ON CONFLICT (user_id, period_start) DO NOTHING",
        {"u": budget.user_id},
    )
    # the row lock taken here serialises every submit of this user's period
    row = await db.fetch_one(
        "UPDATE budgets SET reserved = reserved + :c, updated_at = now() "
        f"WHERE user_id = :u AND period_start = {start} "
        "AND (CAST(:limit AS bigint) IS NULL OR spent + reserved + :c <= CAST(:limit AS bigint)) "
        "RETURNING period_start",
        {"u": budget.user_id, "c": cost, "limit": budget.limit},
    )
    if row is None:
        usage = await usage_of(db, budget)
        raise BudgetExceeded(cost, usage.remaining or 0)
    await db.execute(
        "INSERT INTO budget_ledger (job_id, entry, kind, user_id, period_start, amount) "
        "VALUES (:j, 'reserve', 'reserve', :u, :p, :c)",
        {"j": job_id, "u": budget.user_id, "p": row["period_start"], "c": cost},
    )


async def close(
    db: Database, job_id: UUID, *, settle: bool, final_cost: int | None = None
) -> tuple[int, int] | None:
    """Settle or release the job's reservation, once; call inside its terminal transition.

    Settling spends `final_cost` (None: the whole reservation), never more than was
    reserved; releasing spends nothing. Returns (reserved, settled) — settled is 0
    for a release — or None when there was nothing to close: a job from before
    budgets, or one closed already.
    """
    reservation = await db.fetch_one(
        "SELECT user_id, period_start, amount FROM budget_ledger "
        "WHERE job_id = :j AND entry = 'reserve'",
        {"j": job_id},
    )
    if reservation is None:
        return None
    reserved = int(reservation["amount"])
    # a job never costs more than it reserved: the reservation is what the budget allowed
    if not settle:
        spent = 0
    else:
        spent = reserved if final_cost is None else min(max(0, final_cost), reserved)
    kind = "settle" if settle else "release"
    closed = await db.fetch_one(
        "INSERT INTO budget_ledger (job_id, entry, kind, user_id, period_start, amount) "
        "VALUES (:j, 'close', :k, :u, :p, :a) ON CONFLICT (job_id, entry) DO NOTHING "
        "RETURNING job_id",
        {
            "j": job_id,
            "k": kind,
            "u": reservation["user_id"],
            "p": reservation["period_start"],
            "a": spent,
        },
    )
    if closed is None:
        return None
    await db.execute(
        "UPDATE budgets SET reserved = reserved - :r, spent = spent + :s, updated_at = now() "
        "WHERE user_id = :u AND period_start = :p",
        {"r": reserved, "s": spent, "u": reservation["user_id"], "p": reservation["period_start"]},
    )
    return reserved, spent


def count_closing(reserved: int, settled: int) -> None:
    """Metrics of a committed closing: money settled, and the rest of the reservation released."""
    if settled:
        BUDGET_MONEY.labels("settled").inc(to_amount(settled))
    if reserved - settled:
        BUDGET_MONEY.labels("released").inc(to_amount(reserved - settled))


def count_reservation(cost: int) -> None:
    """Metrics of a committed reservation."""
    if cost:
        BUDGET_MONEY.labels("reserved").inc(to_amount(cost))


async def usage_of(db: Database, budget: Budget) -> Usage:
    """The user's spent and reserved money in the current period (zeros when none yet)."""
    start = _period_start_sql(budget.period)
    row = await db.fetch_one(
        f"SELECT {start} AS period_start, b.spent, b.reserved FROM (SELECT 1) one "
        f"LEFT JOIN budgets b ON b.user_id = :u AND b.period_start = {start}",
        {"u": budget.user_id},
    )
    assert row is not None
    return Usage(
        period=budget.period,
        period_start=row["period_start"],
        spent=int(row["spent"] or 0),
        reserved=int(row["reserved"] or 0),
        limit=budget.limit,
    )

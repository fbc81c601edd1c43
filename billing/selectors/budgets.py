"""Token budgets: where a budget period starts and when it resets.

A period starts at 00:00 in `TOKEN_BUDGET_TIME_ZONE` (UTC by default): every day, every Monday (ISO weeks),
or the 1st of every month. The hold's and the settlement's SQL compute the same start with PostgreSQL's
`date_trunc(period, now AT TIME ZONE zone) AT TIME ZONE zone` (`sql.PERIOD_START`); this module is the
Python twin (the ORM path, the console, the API and the refusal message), tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken, BudgetPeriod

PERIOD_ADJECTIVES: dict[str, object] = {"day": _("daily"), "week": _("weekly"), "month": _("monthly")}


def period_adjective(period: str) -> str:
    """"daily", "weekly" or "monthly" (translated), for messages about a budget."""
    return str(PERIOD_ADJECTIVES.get(period, period))


def budget_zone() -> ZoneInfo:
    return ZoneInfo(settings.TOKEN_BUDGET_TIME_ZONE)


def period_start(*, period: str, now: datetime) -> datetime:
    """The start of the budget period that contains `now` (an aware datetime)."""
    zone = budget_zone()
    local = now.astimezone(zone).replace(tzinfo=None)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.WEEK:
        start -= timedelta(days=start.weekday())
    elif period == BudgetPeriod.MONTH:
        start = start.replace(day=1)
    return start.replace(tzinfo=zone)


def next_reset(*, period: str, now: datetime) -> datetime:
    """When the budget period that contains `now` ends (the next period's start)."""
    start = period_start(period=period, now=now).replace(tzinfo=None)
    if period == BudgetPeriod.DAY:
        end = start + timedelta(days=1)
    elif period == BudgetPeriod.WEEK:
        end = start + timedelta(days=7)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return end.replace(tzinfo=budget_zone())


@dataclass(frozen=True)
class BudgetState:
    """A token's budget as of `now`: what the current period has settled, what is frozen, what is left."""

    budget: int | None
    period: str
    period_start: datetime
    period_used: int  # 0 when the stored period is over (settlement rolls it over)
    held: int
    remaining: int | None
    resets_at: datetime


def token_budget(*, token: ApiToken, now: datetime) -> BudgetState:
    start = period_start(period=token.budget_period, now=now)
    used = token.period_used if token.period_start is not None and token.period_start >= start else 0
    remaining = None if token.budget is None else max(token.budget - used - token.held, 0)
    return BudgetState(
        budget=token.budget, period=token.budget_period, period_start=start, period_used=used, held=token.held,
        remaining=remaining, resets_at=next_reset(period=token.budget_period, now=now),
    )

"""Reads of the daily usage rollup (billing_usageday): the dashboard chart and the balance history's
usage rows. Each is one query over at most a few rows per day and model, whatever the number of usage
records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.db.models import Max, Min, Sum
from django.utils import timezone

from billing.models import UsageDay
from synstar.money import format_usd

CHART_DAYS = 30


@dataclass(frozen=True)
class UsageChart:
    days: list[str]  # ISO dates, oldest first
    models: list[dict]  # {"name", "cost": [USD strings per day], "requests": [ints per day]}, biggest spend first
    total_cost: int
    total_requests: int

    def as_json(self) -> dict:
        return {"days": self.days, "models": self.models}


def usage_chart(*, user, days: int = CHART_DAYS, today: date | None = None) -> UsageChart:
    """Spend and settled requests per UTC day and model over the last `days` days (today included)."""
    today = today or timezone.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    axis = [first + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(axis)}
    rows = UsageDay.objects.filter(user=user, day__gte=first, day__lte=today).values_list("day", "model__name", "cost", "requests")
    per_model: dict[str, tuple[list[int], list[int]]] = {}
    for day, name, cost, requests in rows:
        costs, counts = per_model.setdefault(name, ([0] * days, [0] * days))
        costs[index[day]] += cost
        counts[index[day]] += requests
    ordered = sorted(per_model.items(), key=lambda kv: (-sum(kv[1][0]), -sum(kv[1][1]), kv[0]))
    return UsageChart(
        days=[d.isoformat() for d in axis],
        models=[
            {"name": name, "cost": [format_usd(c, places=None) for c in costs], "requests": counts}
            for name, (costs, counts) in ordered
        ],
        total_cost=sum(sum(v[0]) for v in per_model.values()),
        total_requests=sum(sum(v[1]) for v in per_model.values()),
    )


def usage_day_totals(
    *, user, day_from: date | None = None, day_to: date | None = None, before: date | None = None, limit: int | None = None
) -> list[tuple[date, int, int, int | None, int | None]]:
    """(UTC day, cost, settled requests, first and last settlement entry id) of each day with usage in the
    range (`before` exclusive), newest first: the balance history's usage rows (a day's cost is exactly
    that day's settlement postings) and the bounds of its per-request view."""
    qs = UsageDay.objects.filter(user=user)
    if day_from:
        qs = qs.filter(day__gte=day_from)
    if day_to:
        qs = qs.filter(day__lte=day_to)
    if before:
        qs = qs.filter(day__lt=before)
    rows = qs.values("day").annotate(
        cost=Sum("cost"), requests=Sum("requests"), first=Min("first_entry_id"), last=Max("last_entry_id")
    ).order_by("-day")
    if limit is not None:
        rows = rows[:limit]
    return [(row["day"], row["cost"], row["requests"], row["first"], row["last"]) for row in rows]

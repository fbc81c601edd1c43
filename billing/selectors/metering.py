"""Reads: usage records (generations), keyset-paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.utils import timezone

from billing.models import Generation


@dataclass(frozen=True)
class UsageFilters:
    token_id: int | None = None
    model: str | None = None
    state: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def usage_records(*, user, filters: UsageFilters, before_id: int | None = None, limit: int = 50) -> list[Generation]:
    """Newest first, keyset-paginated on id: the cost of a page does not grow with the table."""
    qs = Generation.objects.filter(user=user)
    if filters.token_id:
        qs = qs.filter(token_id=filters.token_id)
    if filters.model:
        qs = qs.filter(model__name=filters.model)
    if filters.state:
        qs = qs.filter(state=filters.state)
    tz = timezone.get_current_timezone()
    if filters.date_from:
        qs = qs.filter(created_at__gte=datetime.combine(filters.date_from, time.min, tzinfo=tz))
    if filters.date_to:
        qs = qs.filter(created_at__lt=datetime.combine(filters.date_to, time.max, tzinfo=tz))
    if before_id:
        qs = qs.filter(id__lt=before_id)
    return list(qs.select_related("token", "model").order_by("-id")[:limit])


def generation_for_user(*, user, public_id: str, token_id: int | None = None) -> Generation | None:
    """The user's generation; with `token_id`, only if that token made it (a token scoped to its own)."""
    qs = Generation.objects.filter(user=user, public_id=public_id)
    if token_id is not None:
        qs = qs.filter(token_id=token_id)
    return qs.select_related("token", "model").first()

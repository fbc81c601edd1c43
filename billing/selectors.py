"""Reads: groups a user may use, effective rates, pricing tables, usage records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from fractions import Fraction

from django.db.models import Q, QuerySet
from django.utils import timezone

from billing.models import ApiToken, Generation, ModelPrice, TierModelRate, TokenGroup
from billing.pricing import price_snapshot
from synstar.money import format_usd, round_half_up


def groups_for_user(*, user) -> QuerySet[TokenGroup]:
    if user is None or not user.is_authenticated:
        return TokenGroup.objects.filter(is_public=True).select_related("tier")
    return (
        TokenGroup.objects.filter(Q(is_public=True) | Q(allowed_users=user)).distinct().select_related("tier")
    )


def group_allowed(*, user, group: TokenGroup) -> bool:
    return group.is_public or group.allowed_users.filter(pk=user.pk).exists()


@dataclass(frozen=True)
class PriceRow:
    model: ModelPrice
    snapshot: dict
    group_rates: list[tuple[TokenGroup, Decimal]]

    @property
    def listed(self) -> dict:
        return price_display(self.snapshot, Decimal(1))

    @property
    def groups(self) -> list[tuple[TokenGroup, Decimal, dict]]:
        return [(group, rate, price_display(self.snapshot, rate)) for group, rate in self.group_rates]


def pricing_table(*, user) -> list[PriceRow]:
    """Every active model with its listed price and the rate in each group the user may use."""
    groups = list(groups_for_user(user=user))
    overrides = {
        (o.tier_id, o.model_id): o.rate
        for o in TierModelRate.objects.filter(tier__in={g.tier_id for g in groups})
    }
    return [
        PriceRow(
            model=model,
            snapshot=price_snapshot(model),
            group_rates=[(g, overrides.get((g.tier_id, model.pk), g.tier.rate)) for g in groups],
        )
        for model in ModelPrice.objects.filter(is_active=True)
    ]


def tokens_for_user(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user, deleted_at__isnull=True).select_related("group__tier")


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


def price_display(snapshot: dict, rate: Decimal) -> dict:
    """Prices as USD decimal strings, scaled by `rate` (rounded once per figure)."""
    def money(nanos):
        return None if nanos is None else format_usd(round_half_up(Fraction(nanos) * Fraction(rate)), places=None)

    bt = snapshot["billing_type"]
    if bt == "per_token":
        out = {
            "input_per_million": money(snapshot["input_per_million"]),
            "output_per_million": money(snapshot["output_per_million"]),
            "cached_input_per_million": money(snapshot["cached_input_per_million"]),
        }
        if snapshot["long_context_threshold"]:
            out["long_context_threshold"] = snapshot["long_context_threshold"]
            out["long_input_per_million"] = money(snapshot["long_input_per_million"])
            out["long_output_per_million"] = money(snapshot["long_output_per_million"])
    elif bt == "per_request":
        out = {"per_request": money(snapshot["request_price"])}
    else:
        out = {"per_unit": money(snapshot["unit_price"]), "unit": ModelPrice.Unit(snapshot["unit"]).label}
    if snapshot["minimum_charge"]:
        out["minimum_charge"] = money(snapshot["minimum_charge"])
    return out

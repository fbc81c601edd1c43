"""Reads: the pricing table (listed prices and the rate in each group a user may use)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.models import ModelPrice, TierModelRate, TokenGroup
from billing.selectors.tokens import groups_for_user
from billing.services.metering.pricing import price_snapshot
from synstar.money import format_usd, round_half_up


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


def model_names() -> list[str]:
    """Every model id in the catalog (active or not), for allow-list choices."""
    return list(ModelPrice.objects.order_by("name").values_list("name", flat=True))

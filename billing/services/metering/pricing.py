"""Cost = listed price x usage x tier rate, computed exactly and rounded once at the end (half-up).

Prices come from a snapshot (a dict taken at hold time), so a price edited while a request is in flight
does not change what that request costs. Conventions:
- `input_tokens` counts all prompt tokens; `cached_tokens` is the part served from cache (billed at the
  cached price, the rest at the input price). Above `long_context_threshold` input tokens, the whole
  request is billed at the long-context prices.
- The minimum charge applies to the listed cost, before the tier rate.

A hold freezes an upper bound (`hold_bound`, `hold_amount`): per token, the input estimate plus the
requested maximum output (the model's `default_max_output_tokens` when none is sent); per unit, the
units; per request, the price; never less than the configured minimum hold. A request that gives no
bound is refused (`RequestNotPriceable`), never held at $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from django.utils.translation import gettext_lazy as _

from billing.models.catalog import DEFAULT_MAX_OUTPUT_TOKENS, MAX_TOKENS
from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format
from synstar.money import round_half_up

MILLION = 1_000_000
MAX_UNITS = Decimal(1_000_000)


class RequestNotPriceable(InvalidRequest):
    code = "request_not_priceable"
    default_message = _("The request gives nothing to price its hold by.")


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    units: Decimal = Decimal(0)

    def validate(self) -> Usage:
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
                raise InvalidRequest(lazy_format(_("%(name)s must be a whole number from 0 to %(MAX_TOKENS)s."), name=name, MAX_TOKENS=format(MAX_TOKENS, ',')), code="invalid_usage")
        if self.cached_tokens > self.input_tokens:
            raise InvalidRequest(_("cached_tokens cannot exceed input_tokens."), code="invalid_usage")
        if not isinstance(self.units, Decimal) or not self.units.is_finite() or not 0 <= self.units <= MAX_UNITS:
            raise InvalidRequest(lazy_format(_("units must be a number from 0 to %(MAX_UNITS)s."), MAX_UNITS=format(MAX_UNITS, ',')), code="invalid_usage")
        return self


PRICE_FIELDS = (
    "billing_type",
    "input_per_million",
    "output_per_million",
    "cached_input_per_million",
    "long_context_threshold",
    "long_input_per_million",
    "long_output_per_million",
    "long_cached_input_per_million",
    "request_price",
    "unit",
    "unit_price",
    "minimum_charge",
    "default_max_output_tokens",
)


def price_snapshot(model) -> dict:
    return {field: getattr(model, field) for field in PRICE_FIELDS}


def listed_cost(price: dict, usage: Usage) -> Fraction:
    """Exact listed cost in nanos (a Fraction), before the tier rate, minimum charge applied."""
    billing_type = price["billing_type"]
    if billing_type == "per_token":
        long = price.get("long_context_threshold") is not None and usage.input_tokens > price["long_context_threshold"]
        input_price = price["long_input_per_million"] if long and price["long_input_per_million"] is not None else price["input_per_million"]
        output_price = price["long_output_per_million"] if long and price["long_output_per_million"] is not None else price["output_per_million"]
        cached_price = price["long_cached_input_per_million"] if long else price["cached_input_per_million"]
        if cached_price is None:
            cached_price = input_price
        uncached = usage.input_tokens - usage.cached_tokens
        cost = Fraction(uncached * input_price + usage.cached_tokens * cached_price + usage.output_tokens * output_price, MILLION)
    elif billing_type == "per_request":
        cost = Fraction(price["request_price"])
    elif billing_type == "per_unit":
        cost = Fraction(usage.units) * price["unit_price"]
    else:  # pragma: no cover - guarded by model choices
        raise ValueError(f"unknown billing type {billing_type!r}")
    return max(cost, Fraction(price.get("minimum_charge") or 0))


def charge(price: dict, usage: Usage, rate: Decimal) -> int:
    """What the user pays, in nanos: listed cost x rate, rounded once."""
    return round_half_up(listed_cost(price, usage) * Fraction(rate))


def estimate_usage(price: dict, *, input_tokens: int, max_output_tokens: int, units: Decimal) -> Usage:
    """The usage to freeze for: all input uncached plus the most output the request may produce."""
    if price["billing_type"] == "per_token":
        return Usage(input_tokens=input_tokens, output_tokens=max_output_tokens)
    if price["billing_type"] == "per_unit":
        return Usage(units=units)
    return Usage()


def hold_bound(price: dict, *, input_tokens: int, max_output_tokens: int | None, units: Decimal) -> Usage:
    """The most a request may consume, from what the gateway sent; refuses a request with no bound.

    Per token: `input_tokens` (required) plus `max_output_tokens`, or the model's default maximum output
    when none (or 0) is sent. Per unit: `units` (required). Per request: nothing is needed.
    """
    billing_type = price["billing_type"]
    if billing_type == "per_token":
        if not input_tokens:
            raise RequestNotPriceable(
                _("input_tokens is required for a per-token model: send an estimate of the prompt's tokens."),
                code="input_tokens_required",
            )
        max_output = max_output_tokens or price.get("default_max_output_tokens") or DEFAULT_MAX_OUTPUT_TOKENS
        return Usage(input_tokens=input_tokens, output_tokens=max_output)
    if billing_type == "per_unit":
        if not units:
            raise RequestNotPriceable(
                lazy_format(_("units is required for a per-unit model (priced per %(value)s)."), value=price.get('unit') or 'unit'),
                code="units_required",
            )
        return Usage(units=units)
    return Usage()


def _bound_corners(price: dict, bound: Usage) -> list[Usage]:
    """The usages within `bound` at which the charge can peak. Per token the cost is linear with
    non-negative prices on each side of the long-context threshold, so over all usages with input <=
    the bound's input (cached <= input) and output <= its output, the highest charge is at full output,
    input at the bound or at the threshold, all of it cached or none."""
    if price["billing_type"] != "per_token":
        return [bound]
    inputs = {bound.input_tokens}
    threshold = price.get("long_context_threshold")
    if threshold is not None and bound.input_tokens > threshold:
        inputs.add(threshold)
    return [
        Usage(input_tokens=n, output_tokens=bound.output_tokens, cached_tokens=cached)
        for n in sorted(inputs)
        for cached in (0, n)
    ]


def hold_amount(price: dict, bound: Usage, rate: Decimal, *, minimum: int) -> int:
    """What a hold freezes, in nanos: the highest charge of any usage within `bound`, at least `minimum`."""
    return max(max(charge(price, usage, rate) for usage in _bound_corners(price, bound)), minimum)

"""Cost for every billing type and tier, against hand-computed expectations (nanos)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.services.metering.pricing import RequestNotPriceable, Usage, charge, hold_amount, hold_bound, listed_cost
from synstar.errors import InvalidRequest

M = 1_000_000_000  # nanos per USD

CHAT = {  # $2.50 in / $10 out / $1.25 cached per million; long context above 200k: $5 / $15 / $2.50
    "billing_type": "per_token",
    "input_per_million": 2_500_000_000,
    "output_per_million": 10_000_000_000,
    "cached_input_per_million": 1_250_000_000,
    "long_context_threshold": 200_000,
    "long_input_per_million": 5_000_000_000,
    "long_output_per_million": 15_000_000_000,
    "long_cached_input_per_million": 2_500_000_000,
    "request_price": 0,
    "unit": "",
    "unit_price": 0,
    "minimum_charge": 0,
}
NO_CACHE_PRICE = {**CHAT, "cached_input_per_million": None, "long_context_threshold": None}
PER_REQUEST = {**CHAT, "billing_type": "per_request", "request_price": 40_000_000}  # $0.04
IMAGE = {**CHAT, "billing_type": "per_unit", "unit": "image", "unit_price": 40_000_000}  # $0.04 / image
TTS = {**CHAT, "billing_type": "per_unit", "unit": "1k_chars", "unit_price": 15_000_000}  # $0.015 / 1k chars
EMBED_MIN = {**CHAT, "input_per_million": 20_000_000, "output_per_million": 0, "minimum_charge": 1_000}  # $0.02/M


@pytest.mark.parametrize(
    ("price", "usage", "rate", "expected"),
    [
        # 1,000 in + 500 out at $2.50/$10 per M: 0.0025 + 0.005 = $0.0075
        (CHAT, Usage(input_tokens=1000, output_tokens=500), "1", 7_500_000),
        # same at tier 0.3: $0.00225
        (CHAT, Usage(input_tokens=1000, output_tokens=500), "0.3", 2_250_000),
        # 1,000 in of which 400 cached: 600*2500 + 400*1250 + 500*10000 = 7,000,000 nanos
        (CHAT, Usage(input_tokens=1000, output_tokens=500, cached_tokens=400), "1", 7_000_000),
        # no cached price: cached input costs the input price
        (NO_CACHE_PRICE, Usage(input_tokens=1000, output_tokens=500, cached_tokens=400), "1", 7_500_000),
        # exactly at the threshold: normal prices. 200,000 * 2500 = 500,000,000
        (CHAT, Usage(input_tokens=200_000), "1", 500_000_000),
        # one above: long prices for the whole request: 200,001 * 5000 + 1000 * 15000 = 1,015,005,000
        (CHAT, Usage(input_tokens=200_001, output_tokens=1000), "1", 1_015_005_000),
        # long context with cache: (200,001-1) * 5000 + 1 * 2500 = 1,000,002,500
        (CHAT, Usage(input_tokens=200_001, cached_tokens=1), "1", 1_000_002_500),
        # rounding once at the end: 1 token at $2.50/M = 2500 nanos x 0.3333 = 833.25 -> 833
        (CHAT, Usage(input_tokens=1), "0.3333", 833),
        # 3 tokens x 2500 x 0.0001 = 0.75 -> 1 (half-up of the total, not per token: 3 x 0.25 -> 0)
        (CHAT, Usage(input_tokens=3), "0.0001", 1),
        # exact half rounds up: 1 token x 2500 x 0.0002 = 0.5 -> 1
        (CHAT, Usage(input_tokens=1), "0.0002", 1),
        (PER_REQUEST, Usage(), "1", 40_000_000),
        (PER_REQUEST, Usage(input_tokens=99_999), "0.3", 12_000_000),
        # 3 images at $0.04 = $0.12; tier 0.3 = $0.036
        (IMAGE, Usage(units=Decimal(3)), "1", 120_000_000),
        (IMAGE, Usage(units=Decimal(3)), "0.3", 36_000_000),
        # 2.5k chars at $0.015 per 1k = $0.0375
        (TTS, Usage(units=Decimal("2.5")), "1", 37_500_000),
        # minimum charge: 10 tokens x 20 nanos = 200 < 1000 minimum -> 1000; x 0.3 = 300
        (EMBED_MIN, Usage(input_tokens=10), "1", 1_000),
        (EMBED_MIN, Usage(input_tokens=10), "0.3", 300),
        # above the minimum: 100,000 x 20 = 2,000,000
        (EMBED_MIN, Usage(input_tokens=100_000), "1", 2_000_000),
        (CHAT, Usage(), "1", 0),
        (CHAT, Usage(input_tokens=1000, output_tokens=500), "0", 0),
    ],
)
def test_charge(price, usage, rate, expected):
    assert charge(price, usage.validate(), Decimal(rate)) == expected


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=-1),
        Usage(output_tokens=10**9),
        Usage(input_tokens=5, cached_tokens=6),
        Usage(input_tokens=True),
        Usage(units=Decimal("-1")),
        Usage(units=Decimal("NaN")),
        Usage(units=Decimal("1e12")),
    ],
)
def test_invalid_usage_is_refused(usage):
    with pytest.raises(InvalidRequest):
        usage.validate()


@given(
    st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
    st.decimals(min_value=0, max_value=5, places=4),
)
def test_charge_is_monotonic_in_output_and_never_negative(inp, out, extra, rate):
    base = charge(CHAT, Usage(input_tokens=inp, output_tokens=out), rate)
    more = charge(CHAT, Usage(input_tokens=inp, output_tokens=out + extra), rate)
    assert 0 <= base <= more


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_rate_one_charges_the_exact_listed_cost_within_half_a_nano(inp, out):
    assert abs(charge(CHAT, Usage(input_tokens=inp, output_tokens=out), Decimal(1)) - listed_cost(CHAT, Usage(input_tokens=inp, output_tokens=out))) <= Decimal("0.5")


# --- hold sizing: the hold is an upper bound of every usage the request allows ---------------------

_PRICE = st.integers(0, 200 * 10**9)


@st.composite
def _hold_cases(draw):
    threshold = draw(st.none() | st.integers(1, 300_000))
    price = {
        **CHAT,
        "input_per_million": draw(_PRICE),
        "output_per_million": draw(_PRICE),
        "cached_input_per_million": draw(st.none() | _PRICE),
        "long_context_threshold": threshold,
        "long_input_per_million": draw(st.none() | _PRICE),
        "long_output_per_million": draw(st.none() | _PRICE),
        "long_cached_input_per_million": draw(st.none() | _PRICE),
        "minimum_charge": draw(st.integers(0, 10**8)),
        "default_max_output_tokens": draw(st.integers(1, 200_000)),
    }
    input_tokens = draw(st.integers(1, 1_000_000))
    max_output = draw(st.none() | st.integers(0, 200_000))
    bound = hold_bound(price, input_tokens=input_tokens, max_output_tokens=max_output, units=Decimal(0))
    # a usage within the bound, drawn towards its edges (the threshold, all or none cached)
    used_input = draw(st.sampled_from([input_tokens, min(input_tokens, threshold or input_tokens)]) | st.integers(0, input_tokens))
    cached = draw(st.sampled_from([0, used_input]) | st.integers(0, used_input))
    used_output = draw(st.just(bound.output_tokens) | st.integers(0, bound.output_tokens))
    used = Usage(input_tokens=used_input, output_tokens=used_output, cached_tokens=cached)
    return price, input_tokens, max_output, bound, used, draw(st.decimals(min_value=0, max_value=5, places=4))


@given(_hold_cases(), st.integers(0, 10**8))
def test_hold_amount_covers_the_priced_upper_bound_and_every_usage_within_it(case, minimum):
    price, input_tokens, max_output, bound, used, rate = case
    assert bound == Usage(input_tokens=input_tokens, output_tokens=max_output or price["default_max_output_tokens"])
    frozen = hold_amount(price, bound, rate, minimum=minimum)
    assert frozen >= charge(price, bound, rate)
    assert frozen >= charge(price, used, rate)
    assert frozen >= minimum


@pytest.mark.parametrize(
    ("price", "kwargs", "code"),
    [
        (CHAT, {"input_tokens": 0, "max_output_tokens": 100, "units": Decimal(0)}, "input_tokens_required"),
        (IMAGE, {"input_tokens": 10, "max_output_tokens": 0, "units": Decimal(0)}, "units_required"),
    ],
)
def test_hold_bound_refuses_what_cannot_be_priced(price, kwargs, code):
    with pytest.raises(RequestNotPriceable) as info:
        hold_bound(price, **kwargs)
    assert (info.value.status, info.value.code) == (400, code)


def test_hold_bound_per_request_needs_nothing():
    assert hold_amount(PER_REQUEST, hold_bound(PER_REQUEST, input_tokens=0, max_output_tokens=None, units=Decimal(0)),
                       Decimal(1), minimum=1_000_000) == 40_000_000

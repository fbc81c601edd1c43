from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synstar.money import MAX_NANOS, InvalidAmount, format_usd, parse_usd, round_half_up


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0.50", 500_000_000),
        ("1", 1_000_000_000),
        ("12.345678901", 12_345_678_901),
        (" 100.00 ", 100_000_000_000),
        ("0.000000001", 1),
        (".5", 500_000_000),
        ("1.0000000000", 1_000_000_000),  # trailing zeros past 9 places are exact
        (Decimal("2.25"), 2_250_000_000),
        (3, 3_000_000_000),
        ("1000000000", MAX_NANOS),
    ],
)
def test_parse_usd_accepts_exact_amounts(text, nanos):
    assert parse_usd(text) == nanos


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("-1", {}, "must not be negative"),
        ("0", {}, "greater than zero"),
        ("0.0000000001", {}, "more than 9 decimal places"),
        ("NaN", {}, "decimal number"),
        ("Infinity", {}, "decimal number"),
        (Decimal("NaN"), {}, "finite"),
        ("abc", {}, "decimal number"),
        ("1e3", {}, "decimal number"),
        ("1,000", {}, "decimal number"),
        ("", {}, "decimal number"),
        (1.5, {}, "not a float"),
        (True, {}, "not a float"),
        (None, {}, "decimal string"),
        (["1"], {}, "decimal string"),
        ("1000000000.000000001", {}, "too large"),
        ("-99999999999999999999999", {"allow_negative": True}, "too large"),
    ],
)
def test_parse_usd_rejects_invalid_amounts_with_one_error_type(value, kwargs, message):
    with pytest.raises(InvalidAmount, match=message) as info:
        parse_usd(value, **kwargs)
    assert info.value.status == 400
    assert info.value.code == "invalid_amount"


def test_parse_usd_signed_and_zero_when_allowed():
    assert parse_usd("-2.5", allow_negative=True) == -2_500_000_000
    assert parse_usd("0", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("nanos", "places", "expected"),
    [
        (500_000_000, 2, "0.50"),
        (4_999_999, 2, "0.00"),
        (5_000_000, 2, "0.01"),  # half-up
        (-5_000_000, 2, "-0.01"),  # half away from zero
        (12_345_678_901, 2, "12.35"),
        (12_345_678_901, 6, "12.345679"),
        (12_345_678_901, None, "12.345678901"),
        (500_000_000, None, "0.50"),
        (0, None, "0.00"),
        (-1, None, "-0.000000001"),
        (1_234_567_000_000_000, 2, "1234567.00"),
    ],
)
def test_format_usd(nanos, places, expected):
    assert format_usd(nanos, places=places) == expected


def test_format_usd_with_symbol_and_grouping():
    assert format_usd(1_234_567_890_000_000, symbol=True, grouping=True) == "$1,234,567.89"
    assert format_usd(-2_500_000_000, symbol=True) == "-$2.50"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(49, 100), 0),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),  # half-up, not banker's
        (Decimal("2.5"), 3),
        (7, 7),
    ],
)
def test_round_half_up(value, expected):
    assert round_half_up(value) == expected


@given(st.integers(min_value=-MAX_NANOS, max_value=MAX_NANOS))
def test_exact_format_round_trips(nanos):
    assert parse_usd(format_usd(nanos, places=None), allow_negative=True, allow_zero=True) == nanos


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_round_half_up_is_within_half_a_nano(numerator, denominator):
    exact = Fraction(numerator, denominator)
    rounded = round_half_up(exact)
    assert abs(rounded - exact) <= Fraction(1, 2)
    if abs(rounded - exact) == Fraction(1, 2):
        assert rounded > exact  # ties go up

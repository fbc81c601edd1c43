"""Money: exact integers of nano-dollars (1 USD = 1,000,000,000 nanos), never float.

Everything that turns user input into money goes through `parse_usd`; everything that shows money goes
through `format_usd`; every computed amount is rounded once, at the end, by `round_half_up`.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format

NANOS_PER_USD = 1_000_000_000
DECIMAL_PLACES = 9
# The largest amount any single operation may carry: one billion USD. Far inside BIGINT (9.2e18).
MAX_NANOS = 1_000_000_000 * NANOS_PER_USD

_ONE_NANO = Decimal(1).scaleb(-DECIMAL_PLACES)
_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class InvalidAmount(InvalidRequest):
    code = "invalid_amount"
    default_message = _("The amount is not a valid USD amount.")


def parse_usd(
    value: str | int | Decimal,
    *,
    allow_negative: bool = False,
    allow_zero: bool = False,
    field: str | Promise = "amount",
) -> int:
    """Parse a USD amount (a decimal string such as "12.50", an int or a Decimal) into nanos.

    Raises InvalidAmount for floats, booleans, non-numbers, NaN/Infinity, more than 9 decimal places,
    negative or zero amounts where they are not allowed, and amounts beyond MAX_NANOS.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidAmount(lazy_format(_('%(field)s must be a decimal string such as "12.50", not a float.'), field=field))
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_RE.match(text):
            raise InvalidAmount(lazy_format(_('%(field)s must be a decimal number such as "12.50"; got %(value)s.'), field=field, value=format(repr(value), '.40')))
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex already guarantees a number
            raise InvalidAmount(lazy_format(_("%(field)s is not a number."), field=field)) from None
    else:
        raise InvalidAmount(lazy_format(_('%(field)s must be a decimal string such as "12.50".'), field=field))

    if not amount.is_finite():
        raise InvalidAmount(lazy_format(_("%(field)s must be a finite number."), field=field))
    if abs(amount) > Decimal(MAX_NANOS) / NANOS_PER_USD:
        raise InvalidAmount(lazy_format(_("%(field)s is too large; the most one operation can carry is $1,000,000,000."), field=field))
    if amount != amount.quantize(_ONE_NANO):
        raise InvalidAmount(lazy_format(_("%(field)s has more than %(DECIMAL_PLACES)s decimal places."), field=field, DECIMAL_PLACES=DECIMAL_PLACES))
    with localcontext() as ctx:
        ctx.prec = 40
        nanos = int(amount.scaleb(DECIMAL_PLACES))
    if nanos < 0 and not allow_negative:
        raise InvalidAmount(lazy_format(_("%(field)s must not be negative."), field=field))
    if nanos == 0 and not allow_zero:
        raise InvalidAmount(lazy_format(_("%(field)s must be greater than zero."), field=field))
    return nanos


def round_half_up(value: Fraction | Decimal | int) -> int:
    """Round an exact amount of nanos (possibly fractional) to whole nanos, half away from zero.

    The one rounding function: prices x usage x rate are computed exactly and rounded here, once.
    """
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        value = Fraction(value)
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole, remainder = divmod(magnitude.numerator, magnitude.denominator)
    if remainder * 2 >= magnitude.denominator:
        whole += 1
    return sign * whole


def to_decimal(nanos: int) -> Decimal:
    """Exact Decimal USD of an amount of nanos."""
    return Decimal(nanos).scaleb(-DECIMAL_PLACES)


def format_usd(nanos: int, *, places: int | None = 2, symbol: bool = False, grouping: bool = False) -> str:
    """Format nanos as USD.

    places=2 rounds half-up to cents (summaries); places=None gives the exact value with at least two
    decimals and no trailing zeros beyond them (API output, per-request costs).
    """
    value = to_decimal(nanos)
    if places is None:
        text = f"{value:f}"
        if "." in text:
            whole, frac = text.split(".")
            frac = frac.rstrip("0").ljust(2, "0")
        else:
            whole, frac = text, "00"
        number = Decimal(f"{whole}.{frac}")
        digits = len(frac)
    else:
        number = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        digits = places
    negative = number < 0
    body = f"{abs(number):,.{digits}f}" if grouping else f"{abs(number):.{digits}f}"
    if symbol:
        body = f"${body}"
    return f"-{body}" if negative else body


def format_cny_indicative(nanos: int, *, cny_per_usd: str) -> str:
    """An indicative CNY figure of a USD amount at a configured rate ("7.2"): "¥723.50", rounded half-up to
    the fen by the one rounding function. Shown beside Alipay and WeChat Pay only; amounts are charged in USD."""
    fen = round_half_up(Fraction(nanos) * Fraction(Decimal(cny_per_usd)) / (NANOS_PER_USD // 100))
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def usd(amount: str) -> int:
    """Nanos of a literal USD amount written in code or settings, e.g. usd("0.50")."""
    return parse_usd(amount, allow_zero=True, allow_negative=True)


NANOS_PER_CENT = NANOS_PER_USD // 100


def to_cents(nanos: int) -> int:
    """Provider boundary only: nanos -> integer cents (the amount must be whole cents)."""
    cents, remainder = divmod(nanos, NANOS_PER_CENT)
    if remainder:
        raise InvalidAmount(_("Payment amounts must be whole cents."))
    return cents


def from_cents(cents: int) -> int:
    """Provider boundary only: integer cents -> nanos."""
    return int(cents) * NANOS_PER_CENT

"""The one template filter that shows money: {{ nanos|usd }} -> "$1,234.56"; {{ nanos|usd:6 }}."""

from django import template
from django.conf import settings

from synstar.money import format_cny_indicative, format_usd

register = template.Library()


@register.filter
def usd(nanos, places=2):
    if nanos is None or nanos == "":
        return "—"
    places = None if places in ("exact", None) else int(places)
    return format_usd(int(nanos), places=places, symbol=True, grouping=True)


@register.filter
def cny(nanos):
    """{{ nanos|cny }} -> "¥723.50" at settings.CNY_PER_USD (indicative, for Alipay and WeChat Pay); "" when no rate is set."""
    if not settings.CNY_PER_USD or nanos is None or nanos == "":
        return ""
    return format_cny_indicative(int(nanos), cny_per_usd=settings.CNY_PER_USD)

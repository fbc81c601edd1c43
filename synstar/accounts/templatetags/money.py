"""The one template filter that shows money: {{ nanos|usd }} -> "$1,234.56"; {{ nanos|usd:6 }}."""

from django import template

from synstar.money import format_usd

register = template.Library()


@register.filter
def usd(nanos, places=2):
    if nanos is None or nanos == "":
        return "—"
    places = None if places in ("exact", None) else int(places)
    return format_usd(int(nanos), places=places, symbol=True, grouping=True)

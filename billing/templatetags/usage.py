"""`{% usage_chart %}`: the dashboard's spend and requests per day (from the daily rollup), for pages of
other apps (the wallet's dashboard) that show it without importing billing."""

from decimal import Decimal

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from billing.models import ModelPrice
from billing.selectors.usage import usage_chart as usage_chart_data

register = template.Library()


@register.inclusion_tag("console/_usage_chart.html", takes_context=True)
def usage_chart(context):
    request = context["request"]
    chart = usage_chart_data(user=request.user)
    return {"chart": chart, "chart_json": chart.as_json()}


@register.simple_tag
def usage_units(generation) -> str:
    """The units of a unit-billed request ("4 images"; the estimate, marked, until usage is reported);
    the raw units of another model, or a dash."""
    snapshot = generation.price_snapshot or {}
    reported = generation.units is not None
    units = generation.units if reported else generation.est_units
    if snapshot.get("billing_type") != ModelPrice.BillingType.PER_UNIT:
        return _number(generation.units) if generation.units else "—"
    unit = snapshot.get("unit") or ""
    label = UNIT_NAMES.get(unit, (unit, unit))[0 if units == 1 else 1]
    text = f"{_number(units)} {label}"
    if not reported:
        return format_html('{}<span class="sub">{}</span>', text, _("estimate"))
    return text


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


UNIT_NAMES: dict[str, tuple[object, object]] = {
    ModelPrice.Unit.IMAGE: (_("image"), _("images")),
    ModelPrice.Unit.SECOND: (_("second"), _("seconds")),
    ModelPrice.Unit.MINUTE: (_("minute"), _("minutes")),
    ModelPrice.Unit.KCHARS: (_("× 1k characters"), _("× 1k characters")),
    ModelPrice.Unit.TASK: (_("task"), _("tasks")),
}

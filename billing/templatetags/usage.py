"""`{% usage_chart %}`: the dashboard's spend and requests per day (from the daily rollup), for pages of
other apps (the wallet's dashboard) that show it without importing billing."""

from django import template

from billing.selectors.usage import usage_chart as usage_chart_data

register = template.Library()


@register.inclusion_tag("console/_usage_chart.html", takes_context=True)
def usage_chart(context):
    request = context["request"]
    chart = usage_chart_data(user=request.user)
    return {"chart": chart, "chart_json": chart.as_json()}

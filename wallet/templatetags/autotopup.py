"""`{% autotopup_panel %}`: the wallet page's "Saved card and auto top-up" panel."""

from django import template

from wallet.selectors.autotopup import autotopup_overview

register = template.Library()


@register.inclusion_tag("console/_autotopup.html", takes_context=True)
def autotopup_panel(context):
    request = context["request"]
    return {"auto": autotopup_overview(user=request.user), "card_return": request.GET.get("card", ""),
            "request": request, "csrf_token": context.get("csrf_token")}

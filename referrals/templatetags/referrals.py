"""`{% invite_summary %}`: the invite rewards panel, for pages of other apps (the wallet page) that show it
without importing referrals."""

from django import template

from referrals.views import invite_context

register = template.Library()


@register.inclusion_tag("console/_invite_summary.html", takes_context=True)
def invite_summary(context):
    request = context["request"]
    return {**invite_context(request), "request": request, "user": request.user, "csrf_token": context.get("csrf_token")}

"""`{% low_balance_banner %}`: the console's banner while the available balance is below the user's alert
threshold (base.html shows it on every console page)."""

from django import template

from wallet.selectors.alerts import low_balance_state

register = template.Library()


@register.inclusion_tag("console/_low_balance_banner.html", takes_context=True)
def low_balance_banner(context):
    user = getattr(context.get("request"), "user", None)
    if user is None or not user.is_authenticated:
        return {"state": None}
    return {"state": low_balance_state(user=user)}

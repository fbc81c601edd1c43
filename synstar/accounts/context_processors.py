from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from synstar.accounts.selectors import account_policy_for

# The console's navigation. Sections are added here as their pages land.
NAVIGATION = [
    ("dashboard", _("Dashboard"), "console:dashboard"),
    ("wallet", _("Wallet"), "console:wallet"),
    ("bills", _("Bills"), "console:bills"),
    ("history", _("Balance history"), "console:history"),
    ("invite", _("Invite"), "console:invite"),
    ("tokens", _("API tokens"), "console:tokens"),
    ("usage", _("Usage records"), "console:usage"),
    ("pricing", _("Pricing"), "console:pricing"),
    ("alerts", _("Alerts"), "console:alerts"),
    ("settings", _("Settings"), "console:settings"),
]


def console(request):
    if not request.path.startswith(("/admin", "/api")):
        user = getattr(request, "user", None)
        policy = account_policy_for(user=user) if user is not None and user.is_authenticated else None
        active = getattr(request, "resolver_match", None)
        current = active.url_name if active else ""
        return {
            "console_nav": [
                {"key": key, "label": label, "url": reverse(name), "active": name.endswith(f":{current}")}
                for key, label, name in NAVIGATION
            ],
            "account_policy": policy,
        }
    return {}

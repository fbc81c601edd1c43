"""Console: the wallet page's "Saved card and auto top-up" panel and its forms."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from synstar.errors import SynstarError
from synstar.money import InvalidAmount, parse_usd
from wallet.services.autotopup import autotopup_update, card_remove, card_setup_start

PANEL = "#autotopup"


def _back():
    return redirect(reverse("console:wallet") + PANEL)


@login_required
@require_POST
def autotopup_save(request):
    try:
        autotopup_update(
            user=request.user, enabled=request.POST.get("enabled") == "on",
            threshold=parse_usd(request.POST.get("threshold", ""), field=_("Threshold")),
            amount=parse_usd(request.POST.get("amount", ""), field=_("Top-up amount")),
            daily_cap=parse_usd(request.POST.get("daily_cap", ""), field=_("Daily cap")),
        )
    except (SynstarError, InvalidAmount) as exc:
        messages.error(request, exc.message)
        return _back()
    messages.success(request, _("Auto top-up settings saved."))
    return _back()


@login_required
@require_POST
def autotopup_card_setup(request):
    try:
        url = card_setup_start(user=request.user, base_url=request.build_absolute_uri("/")[:-1])
    except SynstarError as exc:
        messages.error(request, exc.message)
        return _back()
    return redirect(url)


@login_required
@require_POST
def autotopup_card_remove(request):
    card_remove(user=request.user)
    messages.success(request, _("The saved card was removed and auto top-up is off."))
    return _back()

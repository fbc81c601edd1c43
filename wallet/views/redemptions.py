"""Redeem a code from the console (the wallet page's form)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from synstar.errors import SynstarError
from synstar.money import format_usd
from wallet.services.redemptions import code_redeem


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@login_required
@require_POST
def redeem(request):
    try:
        redemption = code_redeem(user=request.user, raw_code=request.POST.get("code", ""), ip=client_ip(request))
        messages.success(request, gettext("Code redeemed: $%(amount)s added to your balance.") % {"amount": format_usd(redemption.amount)},
                         extra_tags="form-redeem")
    except SynstarError as exc:
        messages.error(request, exc.message, extra_tags="form-redeem")  # shown under the redeem form, not at the top
    return redirect(reverse("console:wallet") + "#redeem")

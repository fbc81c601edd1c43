import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from referrals.models import InviteCode, Referral
from referrals.selectors import referral_stats
from referrals.services import (
    INVITE_SESSION_KEY,
    active_rule,
    invite_code_for,
    referral_transfer,
)
from synstar.errors import SynstarError
from synstar.money import parse_usd


def invite_landing(request, code: str):
    """The invite link: remember the code for signup, then send the visitor to sign up."""
    if InviteCode.objects.filter(code=code.upper()).exists() and not request.user.is_authenticated:
        request.session[INVITE_SESSION_KEY] = code.upper()
        messages.info(request, gettext("You were invited to SynStar. Create your account to get started."))
    return redirect("account_signup")


def invite_context(request) -> dict:
    code = invite_code_for(user=request.user)
    return {
        "invite_link": request.build_absolute_uri(reverse("invite-landing", args=[code.code])),
        "invite_code": code.code,
        "referral": referral_stats(user=request.user),
        "rule": active_rule(),
        "transfer_key": uuid.uuid4().hex,
    }


@login_required
def invite_page(request):
    context = invite_context(request)
    invitees = list(Referral.objects.filter(inviter=request.user).select_related("invitee").order_by("-created_at")[:50])
    context["invitees"] = invitees
    return render(request, "console/invite.html", context)


@login_required
@require_POST
def transfer(request):
    try:
        amount = parse_usd(request.POST.get("amount", ""), field=gettext("Amount"))
        referral_transfer(user=request.user, amount=amount, idempotency_key=request.POST.get("key") or uuid.uuid4().hex)
        messages.success(request, gettext("Proceeds moved to your balance."), extra_tags="form-transfer")
    except SynstarError as exc:
        messages.error(request, exc.message, extra_tags="form-transfer")  # shown beside the transfer form
    return redirect(local_next(request, default=reverse("console:invite")) + "#transfer")


def local_next(request, *, default: str) -> str:
    """A `next` from the form, only if it is a path on this site (never another host or scheme)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None, require_https=request.is_secure()):
        return target
    return default

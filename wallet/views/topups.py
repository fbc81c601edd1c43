"""Console pages for money in: wallet (top-up), bills, and the sandbox provider's checkout page."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from synstar.accounts.selectors import TOP_UP, account_policy_for
from synstar.errors import SynstarError
from synstar.money import InvalidAmount, format_usd, parse_usd
from wallet.models import TopUpOrder
from wallet.providers import (
    ProviderError,
    airwallex_client,
    sandbox_enabled,
)
from wallet.selectors.ledger import wallet_statistics
from wallet.services.topups import (
    bonus_for,
    methods_for_user,
    order_create,
    topup_limits,
    topup_presets,
    topup_validate,
)
from wallet.services.webhooks import sandbox_checkout_answer, sandbox_checkout_find


def _quote(raw: str) -> dict:
    """The amount field's answer: the credits it buys, or one plain-words error for the field."""
    text = (raw or "").strip().lstrip("$").replace(",", "").strip()
    try:
        amount = parse_usd(text, allow_zero=True)
    except InvalidAmount:
        return {"error": _("Enter an amount such as 25.00."), "code": "invalid_amount"}
    try:
        topup_validate(amount)
    except InvalidAmount as exc:
        minimum, maximum = topup_limits()
        if exc.code == "amount_too_small":
            message = _("The minimum top-up is $%(minimum)s.") % {"minimum": format_usd(minimum, grouping=True)}
        elif exc.code == "amount_too_large":
            message = _("The most you can top up here is $%(maximum)s.") % {"maximum": format_usd(maximum, grouping=True)}
        else:
            message = _("Enter whole cents, such as 25.50.")
        return {"error": message, "code": exc.code}
    bonus = bonus_for(amount)
    return {"amount": amount, "bonus": bonus, "total": amount + bonus}


@login_required
def wallet_page(request):
    minimum, maximum = topup_limits()
    presets = [(p, bonus_for(p)) for p in topup_presets()]
    context = {
        "stats": wallet_statistics(user=request.user),
        "topup_blocked": account_policy_for(user=request.user).refusal(TOP_UP),
        "presets": presets,
        "minimum": minimum,
        "maximum": maximum,
        "methods": methods_for_user(user=request.user),
        "sandbox": sandbox_enabled(),
        "quote": _quote(request.GET.get("amount", "100")),
        "amount_value": request.GET.get("amount", "100"),
    }
    return render(request, "console/wallet.html", context)


@login_required
def topup_quote(request):
    return render(request, "console/_quote.html", {"quote": _quote(request.GET.get("amount", ""))})


@login_required
@require_POST
def topup_start(request):
    back = f"{reverse('console:wallet')}?{urlencode({'amount': request.POST.get('amount', '')})}"
    quote = _quote(request.POST.get("amount", ""))
    if quote.get("error"):
        return redirect(back)  # the wallet page shows the amount's error under the field
    try:
        order = order_create(user=request.user, amount=quote["amount"], method_code=request.POST.get("method", ""),
                             base_url=request.build_absolute_uri("/")[:-1])
    except SynstarError as exc:
        messages.error(request, exc.message, extra_tags="form-topup")
        return redirect(back)
    return redirect(order.checkout_url)


@login_required
def bills_page(request):
    status = request.GET.get("status") or ""
    orders = TopUpOrder.objects.filter(user=request.user).select_related("method").order_by("-id")
    if status in TopUpOrder.Status.values:
        orders = orders.filter(status=status)
    try:
        before = int(request.GET.get("before") or 0) or None
    except ValueError:
        before = None
    if before:
        orders = orders.filter(id__lt=before)
    page = list(orders[: BILLS_PAGE + 1])  # keyset pagination: a deep page costs what the first does
    # Back from a checkout (?paid=<order no.> or ?cancelled=<order no.>): say how it went, and keep the answer
    # and that bill's row up to date by polling until the order reaches its final status.
    how = "paid" if request.GET.get("paid") else "cancelled" if request.GET.get("cancelled") else ""
    returned = _own_order(request, request.GET.get(how, "")) if how else None
    polled = {o.pk for o in page if o.status in OPEN and (o.status == TopUpOrder.Status.PAID or (returned is not None and o.pk == returned.pk))}
    return render(request, "console/bills.html", {
        "orders": page[:BILLS_PAGE], "status": status, "statuses": TopUpOrder.Status.choices,
        "next_before": page[BILLS_PAGE - 1].pk if len(page) > BILLS_PAGE else None, "is_first_page": before is None,
        "returned": returned, "how": how, "polled": polled, "poll": returned is not None and returned.status in OPEN,
    })


OPEN = (TopUpOrder.Status.PENDING, TopUpOrder.Status.PAID)
BILL_POLLS_MAX = 150  # every 2 seconds: a bill is watched for 5 minutes, then the page stops asking


def _own_order(request, order_no: str) -> TopUpOrder | None:
    return TopUpOrder.objects.filter(user=request.user, order_no=order_no).select_related("method").first()


@login_required
def bill_status(request, order_no: str):
    """One bill, re-rendered for htmx polling: its row (`part=row`) or the answer shown after a checkout
    (`part=banner`). Either keeps polling while the order is open, and stops at a final status."""
    order = _own_order(request, order_no)
    if order is None:
        raise Http404("No such bill.")
    try:
        polls = int(request.GET.get("polls") or 0) + 1
    except ValueError:
        polls = BILL_POLLS_MAX
    poll = order.status in OPEN and polls < BILL_POLLS_MAX
    how = "cancelled" if request.GET.get("how") == "cancelled" else "paid"
    if request.GET.get("part") == "banner":
        return render(request, "console/_bill_return.html", {"o": order, "poll": poll, "polls": polls, "how": how})
    return render(request, "console/_bill_row.html", {"o": order, "poll": poll, "polls": polls})


BILLS_PAGE = 50


@login_required
def sandbox_checkout(request, checkout_id: str):
    """The sandbox provider's hosted page. Clearly labelled; no money moves."""
    try:
        order = sandbox_checkout_find(user=request.user, checkout_id=checkout_id)
    except SynstarError:
        raise Http404("No such sandbox checkout.") from None
    if request.method == "POST":
        outcome = request.POST.get("outcome", "")
        if sandbox_checkout_answer(user=request.user, checkout_id=checkout_id, outcome=outcome) is not None:
            return redirect(f"/bills/?{'paid' if outcome == 'pay' else 'cancelled'}={order.order_no}")
    return render(request, "console/sandbox_checkout.html", {"order": order})


@login_required
def airwallex_checkout(request, order_no: str):
    """Open Airwallex's hosted payment page the way Airwallex documents it: Airwallex.js
    `payments.redirectToCheckout` with the intent's id and client_secret, from a page of ours."""
    order = TopUpOrder.objects.filter(order_no=order_no, provider="airwallex", user=request.user).select_related("user").first()
    if order is None or not order.checkout_id:
        raise Http404("No such Airwallex checkout.")
    if order.status != TopUpOrder.Status.PENDING:
        return redirect(f"{reverse('console:bills')}?{urlencode({'status': order.status})}")
    bills = request.build_absolute_uri(reverse("console:bills"))
    try:
        options = airwallex_client.checkout_page_options(
            order, success_url=f"{bills}?{urlencode({'paid': order.order_no})}", fail_url=f"{bills}?{urlencode({'cancelled': order.order_no})}"
        )
    except ProviderError as exc:
        messages.error(request, exc.message)
        return redirect("console:wallet")
    return render(request, "console/airwallex_checkout.html", {"order": order, "options": options, "sdk_url": airwallex_client.SDK_URL})

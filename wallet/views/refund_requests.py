"""Console page for refund requests (issue 13): what each top-up would refund now, the form, the requests."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from synstar.errors import SynstarError
from wallet.selectors.refund_requests import refund_requests_for, refundable_orders
from wallet.services.refund_requests import refund_request_create


@login_required
def refunds_page(request):
    chosen, reason = request.GET.get("order", ""), ""
    if request.method == "POST":
        chosen, reason = request.POST.get("order", ""), request.POST.get("reason", "")
        try:
            refund_request_create(user=request.user, order_no=chosen, reason=reason)
        except SynstarError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Refund request sent. Nothing leaves your balance until it is approved."))
            return redirect("console:refunds")
    rows = refundable_orders(user=request.user)
    return render(request, "console/refund_requests.html", {
        "rows": rows, "requests": refund_requests_for(user=request.user)[:100], "chosen": chosen, "reason": reason,
        "target_days": settings.REFUND_TARGET_BUSINESS_DAYS,
        "can_request": any(r.quote.cash > 0 and r.open_request is None for r in rows),
    })

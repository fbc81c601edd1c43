"""Reads for refund requests (issue 13): what each completed top-up would refund now, under the refund rules."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from wallet.models import Account, RefundRequest, TopUpOrder
from wallet.services.refunds import RefundQuote, refund_quote
from wallet.services.topups import REFUNDABLE


@dataclass(frozen=True)
class RefundableOrder:
    order: TopUpOrder
    quote: RefundQuote  # cash back and bonus clawed back if refunded now (the rule of wallet/services/refunds.py)
    used: int  # the order's credits that are not refundable now (base not refunded - cash)
    open_request: RefundRequest | None


def refundable_orders(*, user) -> list[RefundableOrder]:
    """The user's completed top-ups with something left to refund, newest first. Each figure assumes that
    top-up alone is refunded: they share one available balance."""
    account = Account.objects.filter(user=user, kind=Account.Kind.MAIN).first()
    available = account.balance - account.held if account else 0
    open_requests = {r.order_id: r for r in RefundRequest.objects.filter(user=user, status=RefundRequest.Status.REQUESTED)}
    rows = []
    for order in TopUpOrder.objects.filter(user=user, status__in=REFUNDABLE).select_related("method").order_by("-id")[:100]:
        if order.refunded_amount >= order.amount:
            continue
        quote = refund_quote(order=order, available=available)
        rows.append(RefundableOrder(order=order, quote=quote, used=order.amount - order.refunded_amount - quote.cash,
                                    open_request=open_requests.get(order.pk)))
    return rows


def refund_requests_for(*, user) -> QuerySet[RefundRequest]:
    return RefundRequest.objects.filter(user=user).select_related("order", "refund").order_by("-id")

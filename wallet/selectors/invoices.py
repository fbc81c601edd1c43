"""Reads for receipts, invoice requests and credit notes (issue 13)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext as _

from synstar.errors import NotFound
from wallet.models import CreditNote, InvoiceLine, InvoiceRequest, TopUpOrder
from wallet.services.topups import REFUNDABLE


def invoiceable_orders(*, user) -> list[tuple[TopUpOrder, int]]:
    """The user's completed top-ups on no open or issued invoice request, with what may be invoiced
    (paid minus refunded); fully refunded ones are left out."""
    on_invoice = InvoiceLine.objects.filter(order=OuterRef("pk"), active=True)
    orders = (TopUpOrder.objects.filter(user=user, status__in=REFUNDABLE).exclude(Exists(on_invoice))
              .select_related("method").order_by("-id")[:200])
    return [(o, o.amount - o.cash_refunded) for o in orders if o.amount - o.cash_refunded > 0]


def invoice_requests_for(*, user) -> QuerySet[InvoiceRequest]:
    return InvoiceRequest.objects.filter(user=user).prefetch_related("lines__order", "credit_notes").order_by("-id")


def invoice_for_user(*, user, request_id: int) -> InvoiceRequest:
    """An issued invoice of the user's (for its PDF)."""
    request = InvoiceRequest.objects.filter(user=user, pk=request_id, status=InvoiceRequest.Status.ISSUED).first()
    if request is None:
        raise NotFound(_("No such invoice."))
    return request


def credit_note_for_user(*, user, note_id: int) -> CreditNote:
    note = CreditNote.objects.filter(invoice__user=user, pk=note_id).select_related("invoice", "order").first()
    if note is None:
        raise NotFound(_("No such credit note."))
    return note


def receipt_order_for_user(*, user, order_no: str) -> TopUpOrder:
    """A completed (possibly since refunded) top-up of the user's: it has a receipt."""
    order = TopUpOrder.objects.filter(user=user, order_no=order_no, status__in=REFUNDABLE).select_related("method", "user").first()
    if order is None:
        raise NotFound(_("No receipt for this order: only completed top-ups have one."))
    return order


def invoice_queue() -> QuerySet[InvoiceRequest]:
    """Admin: requests waiting, oldest first."""
    return InvoiceRequest.objects.filter(status=InvoiceRequest.Status.REQUESTED).order_by("created_at")

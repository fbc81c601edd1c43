"""Receipts, invoice requests, issued invoices and credit notes (issue 13).

- A receipt is the order itself, rendered as a PDF (wallet/selectors/documents.py); it is emailed when the
  top-up completes (`receipt_on_completion`, a top-up hook registered by WalletConfig.ready).
- An invoice request names completed top-ups of the user's that are on no open or issued request (a unique
  constraint on the active lines, not a check) and asks for what was paid minus what was refunded.
- Issuing allocates the next number from the `invoice` counter row, locked FOR UPDATE in the issuing
  transaction: numbers run without gaps, in the order invoices were issued (a database sequence would leave
  a gap for every rolled-back issue). Lock order: the top-up orders (id order), the request, the counter.
- A refund of an invoiced top-up writes a numbered credit note (`credit-note` series) for what the invoice
  now overstates, in the refund's own transaction (it holds the order's lock).
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from synstar.db import atomic_with_retry
from synstar.errors import Conflict, InvalidRequest, NotFound
from synstar.i18n import user_language
from wallet.models import CreditNote, DocumentCounter, InvoiceLine, InvoiceRequest, Refund, TopUpOrder
from wallet.selectors.documents import credit_note_pdf, document_number, invoice_pdf, receipt_pdf
from wallet.services.topups import REFUNDABLE

logger = logging.getLogger(__name__)

INVOICE_SERIES = "invoice"
CREDIT_NOTE_SERIES = "credit-note"
MAX_ORDERS_PER_REQUEST = 100


def invoiceable_amount(order: TopUpOrder) -> int:
    """What an invoice may show for a top-up: what was paid minus what was refunded (nothing unless completed)."""
    if order.status not in REFUNDABLE:
        return 0
    return max(order.amount - order.cash_refunded, 0)


def _number_next(series: str) -> int:
    """The next number of a series, from its counter row locked FOR UPDATE until the caller commits: gap-free."""
    DocumentCounter.objects.get_or_create(series=series)  # the migration creates both rows; this only helps a new series
    counter = DocumentCounter.objects.select_for_update().get(series=series)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _clean(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidRequest(_("%(field)s is required.") % {"field": field}, code="missing_field")
    if len(value) > max_length:
        raise InvalidRequest(_("%(field)s is too long (at most %(n)d characters).") % {"field": field, "n": max_length},
                             code="field_too_long")
    return value


def invoice_request_create(*, user, company_name: str, tax_id: str, order_nos: list[str], delivery: str,
                           email: str = "", mailing_address: str = "") -> InvoiceRequest:
    """Ask for an invoice over completed top-ups not yet on an invoice, for what was paid minus refunded."""
    company_name = _clean(company_name, field=_("Company name"), max_length=200)
    tax_id = _clean(tax_id, field=_("Tax identification number"), max_length=64)
    if delivery not in InvoiceRequest.Delivery.values:
        raise InvalidRequest(_("Choose how the invoice is delivered: email or paper."), code="invalid_delivery")
    email = _clean(email, field=_("Email"), max_length=254, required=False)
    mailing_address = _clean(mailing_address, field=_("Mailing address"), max_length=1000, required=False)
    if delivery == InvoiceRequest.Delivery.EMAIL:
        email = email or user.email
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidRequest(_("Enter a valid email address for the electronic invoice."), code="invalid_email") from None
        mailing_address = ""
    else:
        if not mailing_address:
            raise InvalidRequest(_("A paper invoice needs a mailing address."), code="missing_field")
        email = ""
    wanted = sorted({str(n).strip() for n in order_nos if str(n).strip()})
    if not wanted:
        raise InvalidRequest(_("Choose at least one completed top-up to invoice."), code="no_orders")
    if len(wanted) > MAX_ORDERS_PER_REQUEST:
        raise InvalidRequest(_("At most %(n)d top-ups fit on one invoice.") % {"n": MAX_ORDERS_PER_REQUEST}, code="too_many_orders")
    return _invoice_request_create(user=user, company_name=company_name, tax_id=tax_id, order_nos=wanted, delivery=delivery,
                                   email=email, mailing_address=mailing_address)


@atomic_with_retry
def _invoice_request_create(*, user, company_name: str, tax_id: str, order_nos: list[str], delivery: str, email: str,
                            mailing_address: str) -> InvoiceRequest:
    orders = list(TopUpOrder.objects.select_for_update().filter(user=user, order_no__in=order_nos).order_by("id"))
    if len(orders) != len(order_nos):
        raise NotFound(_("One of the chosen top-ups does not exist."), code="order_not_found")
    amounts = {}
    for order in orders:
        amounts[order.pk] = invoiceable_amount(order)
        if amounts[order.pk] <= 0:
            raise Conflict(_("Top-up %(order)s has nothing to invoice: only completed, not refunded top-ups are invoiced.")
                           % {"order": order.order_no}, code="not_invoiceable")
    request = InvoiceRequest.objects.create(
        user=user, company_name=company_name, tax_id=tax_id, delivery=delivery, email=email,
        mailing_address=mailing_address, amount=sum(amounts.values()),
    )
    try:
        with transaction.atomic():
            InvoiceLine.objects.bulk_create([InvoiceLine(request=request, order=o, amount=amounts[o.pk]) for o in orders])
    except IntegrityError:
        raise Conflict(_("One of the chosen top-ups is already on an invoice or an open invoice request."),
                       code="already_invoiced") from None
    return request


@atomic_with_retry
def invoice_issue(*, request_id: int, actor) -> InvoiceRequest:
    """Issue a requested invoice: the next number, the amounts as they stand now (refunds since the request
    are left out). Issuing an issued invoice again changes nothing."""
    order_ids = list(InvoiceLine.objects.filter(request_id=request_id).values_list("order_id", flat=True))
    orders = {o.pk: o for o in TopUpOrder.objects.select_for_update().filter(pk__in=order_ids).order_by("id")}
    request = InvoiceRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound(_("No such invoice request."))
    if request.status == InvoiceRequest.Status.ISSUED:
        return request
    if request.status != InvoiceRequest.Status.REQUESTED:
        raise Conflict(_("This invoice request was rejected."), code="invoice_request_closed")
    lines = list(request.lines.all())
    for line in lines:
        line.amount = min(line.amount, invoiceable_amount(orders[line.order_id]))
    total = sum(line.amount for line in lines)
    if total <= 0:
        raise Conflict(_("Nothing is left to invoice: the top-ups were refunded. Reject the request instead."),
                       code="nothing_to_invoice")
    InvoiceLine.objects.bulk_update(lines, ["amount"])
    request.number = _number_next(INVOICE_SERIES)
    request.status = InvoiceRequest.Status.ISSUED
    request.invoiced_amount = total
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["number", "status", "invoiced_amount", "decided_by", "decided_at"])
    transaction.on_commit(lambda: _invoice_email(request_id=request.pk))
    return request


@atomic_with_retry
def invoice_reject(*, request_id: int, actor, reason: str) -> InvoiceRequest:
    """Reject a requested invoice with a reason the user reads; its top-ups may be invoiced again."""
    reason = _clean(reason, field=_("Reason"), max_length=2000)
    request = InvoiceRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound(_("No such invoice request."))
    if request.status == InvoiceRequest.Status.REJECTED:
        return request
    if request.status != InvoiceRequest.Status.REQUESTED:
        raise Conflict(_("This invoice was already issued."), code="invoice_request_closed")
    request.status = InvoiceRequest.Status.REJECTED
    request.reject_reason = reason
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
    request.lines.update(active=False)
    transaction.on_commit(lambda: _invoice_email(request_id=request.pk))
    return request


def credit_note_for_refund(*, order: TopUpOrder) -> CreditNote | None:
    """Called by the refund service under the order's lock, in the refund's transaction: if the top-up is on
    an issued invoice that now shows more than was paid minus refunded, a numbered credit note for the difference."""
    line = (InvoiceLine.objects.filter(order=order, active=True, request__status=InvoiceRequest.Status.ISSUED)
            .select_related("request").first())
    if line is None:
        return None
    credited = CreditNote.objects.filter(invoice=line.request, order=order).aggregate(total=Sum("amount"))["total"] or 0
    # Only refunds whose money went out count (a pending refund may still be refused and restored).
    paid_back = Refund.objects.filter(order=order, status=Refund.Status.SUCCEEDED).aggregate(total=Sum("requested"))["total"] or 0
    overstated = line.amount - max(order.amount - paid_back, 0) - credited
    if overstated <= 0:
        return None
    note = CreditNote.objects.create(invoice=line.request, order=order, amount=min(overstated, line.amount - credited),
                                     number=_number_next(CREDIT_NOTE_SERIES))
    transaction.on_commit(lambda: _credit_note_email(note_id=note.pk))
    return note


# --- emails ---------------------------------------------------------------------------------------
# Sent after the transaction commits; a mail server that fails is logged and never undoes the money.


def _send(*, template: str, context: dict, to: str, user, attachment: tuple[str, bytes] | None = None) -> None:
    try:
        with translation.override(user_language(user)):  # in the account's language
            subject = " ".join(render_to_string(f"email/{template}_subject.txt", context).split())
            body = render_to_string(f"email/{template}.txt", context)
        message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to])
        if attachment:
            message.attach(attachment[0], attachment[1], "application/pdf")
        message.send()
    except Exception:  # the document stays downloadable from the console
        logger.exception("email %s to user failed", template)


def _email_never_raises(fn):
    """Emails run after the transaction committed: building the PDF or sending may fail, which is logged and
    never turns an admin action or a webhook that already moved money into an error."""
    @functools.wraps(fn)
    def wrapper(**kwargs):
        try:
            return fn(**kwargs)
        except Exception:
            logger.exception("%s failed", fn.__name__)
            return None
    return wrapper


@_email_never_raises
def _invoice_email(*, request_id: int) -> None:
    request = InvoiceRequest.objects.select_related("user").get(pk=request_id)
    context = {"request": request, "number": document_number(request), "site_url": settings.SITE_URL}
    if request.status == InvoiceRequest.Status.ISSUED:
        attachment = (f"invoice-{document_number(request)}.pdf", invoice_pdf(request)) \
            if request.delivery == InvoiceRequest.Delivery.EMAIL else None
        _send(template="invoice_issued", context=context, to=request.email or request.user.email, user=request.user, attachment=attachment)
    else:
        _send(template="invoice_rejected", context=context, to=request.user.email, user=request.user)


@_email_never_raises
def _credit_note_email(*, note_id: int) -> None:
    note = CreditNote.objects.select_related("invoice__user", "order").get(pk=note_id)
    number = document_number(note)
    _send(template="credit_note", context={"note": note, "number": number, "invoice_number": document_number(note.invoice),
                                           "site_url": settings.SITE_URL},
          to=note.invoice.email or note.invoice.user.email, user=note.invoice.user, attachment=(f"credit-note-{number}.pdf", credit_note_pdf(note)))


def receipt_on_completion(*, order: TopUpOrder) -> None:
    """Top-up hook (in the completing transaction): email the receipt once the completion commits."""
    order_id = order.pk
    transaction.on_commit(lambda: receipt_email(order_id=order_id))


@_email_never_raises
def receipt_email(*, order_id: int) -> None:
    order = TopUpOrder.objects.select_related("user", "method").get(pk=order_id)
    _send(template="receipt", context={"order": order, "site_url": settings.SITE_URL}, to=order.user.email, user=order.user,
          attachment=(f"receipt-{order.order_no}.pdf", receipt_pdf(order)))

"""Console pages for receipts, invoice requests, invoices and credit notes (issue 13)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from synstar.errors import NotFound, SynstarError
from wallet.models import InvoiceRequest
from wallet.selectors.documents import credit_note_pdf, document_number, invoice_pdf, receipt_pdf
from wallet.selectors.invoices import (
    credit_note_for_user,
    invoice_for_user,
    invoice_requests_for,
    invoiceable_orders,
    receipt_order_for_user,
)
from wallet.services.invoices import invoice_request_create


def _pdf(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def invoices_page(request):
    form = {"delivery": "email", "email": request.user.email}
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in ("company_name", "tax_id", "delivery", "email", "mailing_address")}
        chosen = request.POST.getlist("orders")
        try:
            created = invoice_request_create(user=request.user, order_nos=chosen, **form)
        except SynstarError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Invoice request sent. We will email you when the invoice is issued.")
                             if created.delivery == InvoiceRequest.Delivery.EMAIL
                             else _("Invoice request sent. We will post the paper invoice once it is issued."))
            return redirect("console:invoices")
    requests = [(r, document_number(r)) for r in invoice_requests_for(user=request.user)[:100]]
    return render(request, "console/invoices.html", {
        "invoiceable": invoiceable_orders(user=request.user), "requests": requests, "form": form,
        "deliveries": InvoiceRequest.Delivery.choices,
    })


@login_required
def receipt_download(request, order_no: str):
    try:
        order = receipt_order_for_user(user=request.user, order_no=order_no)
    except NotFound:
        raise Http404(_("No receipt for this order.")) from None
    return _pdf(receipt_pdf(order), f"receipt-{order.order_no}.pdf")


@login_required
def invoice_download(request, request_id: int):
    try:
        invoice = invoice_for_user(user=request.user, request_id=request_id)
    except NotFound:
        raise Http404(_("No such invoice.")) from None
    return _pdf(invoice_pdf(invoice), f"invoice-{document_number(invoice)}.pdf")


@login_required
def credit_note_download(request, note_id: int):
    try:
        note = credit_note_for_user(user=request.user, note_id=note_id)
    except NotFound:
        raise Http404(_("No such credit note.")) from None
    return _pdf(credit_note_pdf(note), f"credit-note-{document_number(note)}.pdf")

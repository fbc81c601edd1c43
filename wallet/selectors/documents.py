"""PDF documents for top-ups: receipts, invoices and credit notes (issue 13), rendered from the rows.

reportlab draws them. Text that Helvetica (Latin-1) cannot show, such as a Chinese company name, is set in
reportlab's built-in CID font STSong-Light (Adobe-GB1): the PDF viewer supplies its glyphs, so no font file
is shipped or needed on the server. A document is rendered again on every download, from rows that do not
change once issued, so it reads the same every time."""

from __future__ import annotations

import io
from collections.abc import Sequence

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from synstar.money import format_usd
from wallet.models import CreditNote, InvoiceRequest, TopUpOrder

LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
CJK = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(CJK))

MARGIN = 56
WIDTH, HEIGHT = A4


def document_number(doc: InvoiceRequest | CreditNote) -> str:
    """The printed number: a prefix and the sequential number, e.g. INV-000042 / CN-000003."""
    if isinstance(doc, CreditNote):
        return f"{settings.CREDIT_NOTE_NUMBER_PREFIX}{doc.number:06d}"
    return f"{settings.INVOICE_NUMBER_PREFIX}{doc.number:06d}" if doc.number else ""


def _usd(nanos: int) -> str:
    return f"${format_usd(nanos, places=2, grouping=True)} USD"


def _font(text: str, bold: bool = False) -> str:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return CJK
    return LATIN_BOLD if bold else LATIN


class _Page:
    """A top-down writer on one A4 canvas; a new page when the space runs out."""

    def __init__(self, title: str) -> None:
        self.buffer = io.BytesIO()
        self.canvas = canvas.Canvas(self.buffer, pagesize=A4, pageCompression=1)
        self.canvas.setTitle(title)
        self.canvas.setAuthor(settings.COMPANY_NAME)
        self.y = HEIGHT - MARGIN

    def _room(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.canvas.showPage()
            self.y = HEIGHT - MARGIN

    def text(self, text: str, *, size: float = 10, bold: bool = False, x: float = MARGIN, width: float | None = None,
             gap: float = 4) -> None:
        font = _font(text, bold)
        width = width or (WIDTH - MARGIN - x)
        for paragraph in (text or "").splitlines() or [""]:
            for line in simpleSplit(paragraph, font, size, width) or [""]:
                self._room(size + gap)
                self.canvas.setFont(font, size)
                self.canvas.drawString(x, self.y - size, line)
                self.y -= size + gap

    def rows(self, rows: Sequence[tuple[str, str]], *, label_width: float = 170) -> None:
        for label, value in rows:
            top = self.y
            self.text(label, bold=True)
            after_label = self.y
            self.y = top
            self.text(value, x=MARGIN + label_width)
            self.y = min(self.y, after_label)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
        for i, line in enumerate([header, *rows]):
            self._room(18)
            x: float = MARGIN
            for cell, width in zip(line, widths):
                self.canvas.setFont(_font(cell, bold=i == 0), 9)
                self.canvas.drawString(x, self.y - 9, cell)
                x += width
            self.y -= 14
            if i == 0:
                self.canvas.line(MARGIN, self.y + 2, WIDTH - MARGIN, self.y + 2)
                self.y -= 4

    def space(self, points: float = 10) -> None:
        self.y -= points

    def pdf(self) -> bytes:
        self.canvas.showPage()
        self.canvas.save()
        return self.buffer.getvalue()


def _issuer(page: _Page) -> None:
    page.text(settings.COMPANY_NAME, size=14, bold=True)
    for line in (settings.COMPANY_ADDRESS, settings.COMPANY_EMAIL):
        if line:
            page.text(line, size=9)
    if settings.COMPANY_TAX_ID:
        page.text(_("Tax ID: %(id)s") % {"id": settings.COMPANY_TAX_ID}, size=9)
    page.space(14)


def _date(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z") if value else "-"


def receipt_pdf(order: TopUpOrder) -> bytes:
    """The receipt of a completed top-up: what was paid, how, and the credits it added."""
    page = _Page(_("Receipt %(order)s") % {"order": order.order_no})
    _issuer(page)
    page.text(_("Receipt"), size=18, bold=True)
    page.space(6)
    rows = [
        (_("Order no."), order.order_no),
        (_("Date"), _date(order.completed_at or order.created_at)),
        (_("Billed to"), order.user.email),
        (_("Payment method"), order.method.name),
        (_("Payment amount"), _usd(order.amount)),
        (_("Credits added"), _("%(total)s (base %(base)s + bonus %(bonus)s)") % {
            "total": _usd(order.amount + order.bonus), "base": _usd(order.amount), "bonus": _usd(order.bonus)}),
        (_("Provider reference"), order.payment_id or order.checkout_id or "-"),
        (_("Status"), str(order.get_status_display())),
    ]
    if order.cash_refunded:
        rows.append((_("Refunded"), _usd(order.cash_refunded)))
    page.rows(rows)
    page.space(16)
    page.text(_("Credits are prepaid USD usage of the SynStar API. This receipt is not a tax invoice; request an invoice "
                "from the console."), size=8)
    return page.pdf()


def invoice_pdf(request: InvoiceRequest) -> bytes:
    """An issued invoice: its number, the customer's company and tax ID, one line per top-up."""
    number = document_number(request)
    page = _Page(_("Invoice %(number)s") % {"number": number})
    _issuer(page)
    page.text(_("Invoice"), size=18, bold=True)
    page.space(6)
    page.rows([
        (_("Invoice number"), number),
        (_("Date of issue"), _date(request.decided_at)),
        (_("Customer"), request.company_name),
        (_("Tax identification number"), request.tax_id),
        (_("Delivery"), request.email if request.delivery == InvoiceRequest.Delivery.EMAIL else request.mailing_address),
    ])
    page.space(12)
    lines = list(request.lines.select_related("order", "order__method").order_by("order_id"))
    page.table(
        [_("Top-up"), _("Date"), _("Method"), _("Amount")],
        [[line.order.order_no, _date(line.order.completed_at or line.order.created_at), line.order.method.name, _usd(line.amount)]
         for line in lines],
        widths=[150, 130, 110, 100],
    )
    page.space(8)
    page.rows([(_("Total"), _usd(request.invoiced_amount))])
    page.space(16)
    page.text(_("Prepaid credits for the SynStar API. Amounts in US dollars."), size=8)
    return page.pdf()


def credit_note_pdf(note: CreditNote) -> bytes:
    """A credit note: the refunded part of an invoiced top-up, against that invoice."""
    number = document_number(note)
    invoice = note.invoice
    page = _Page(_("Credit note %(number)s") % {"number": number})
    _issuer(page)
    page.text(_("Credit note"), size=18, bold=True)
    page.space(6)
    page.rows([
        (_("Credit note number"), number),
        (_("Date"), _date(note.created_at)),
        (_("Against invoice"), document_number(invoice)),
        (_("Customer"), invoice.company_name),
        (_("Tax identification number"), invoice.tax_id),
        (_("Top-up"), note.order.order_no),
        (_("Amount credited"), _usd(note.amount)),
    ])
    page.space(16)
    page.text(_("The top-up was refunded after it was invoiced; this note reduces the invoice by the amount credited."), size=8)
    return page.pdf()

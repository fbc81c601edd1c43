"""Invoice requests, issued invoices and credit notes for completed top-ups (issue 13).

Numbers are allocated in the issuing transaction from a counter row locked FOR UPDATE (never a database
sequence: a rolled-back sequence value leaves a gap, and invoice numbers must run without gaps)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from wallet.models.topups import TopUpOrder


class DocumentCounter(models.Model):
    """One row per numbered series (invoices, credit notes): the last number handed out."""

    series = models.CharField(max_length=16, primary_key=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class InvoiceRequest(models.Model):
    """A user's request for an invoice over one or more completed top-ups; admin issues or rejects it."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        ISSUED = "issued", _("Issued")
        REJECTED = "rejected", _("Rejected")

    class Delivery(models.TextChoices):
        EMAIL = "email", _("Electronic invoice by email")
        PAPER = "paper", _("Paper invoice by post")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invoice_requests")
    company_name = models.CharField(max_length=200)
    tax_id = models.CharField(max_length=64, help_text="Tax identification number")
    delivery = models.CharField(max_length=8, choices=Delivery.choices)
    email = models.EmailField(blank=True, default="", help_text="Where the electronic invoice goes")
    mailing_address = models.TextField(blank=True, default="", help_text="Where the paper invoice goes")
    amount = models.BigIntegerField(help_text="nanos asked for: the sum of the lines")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    number = models.PositiveBigIntegerField(null=True, blank=True, unique=True, help_text="Sequential, set when issued")
    invoiced_amount = models.BigIntegerField(default=0, help_text="nanos on the issued invoice")
    reject_reason = models.TextField(blank=True, default="")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, invoiced_amount__gte=0), name="wallet_invoicereq_amounts"),
            models.CheckConstraint(condition=Q(status="issued", number__isnull=False) | (~Q(status="issued") & Q(number__isnull=True)),
                                   name="wallet_invoicereq_number_iff_issued"),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="wallet_invoicereq_queue")]

    def __str__(self) -> str:
        return f"Invoice request {self.pk} ({self.company_name})"


class InvoiceLine(models.Model):
    """One top-up on an invoice request. A top-up is on at most one open or issued request (`active`)."""

    request = models.ForeignKey(InvoiceRequest, on_delete=models.CASCADE, related_name="lines")
    order = models.ForeignKey(TopUpOrder, on_delete=models.PROTECT, related_name="invoice_lines")
    amount = models.BigIntegerField(help_text="nanos: asked for, then what was invoiced once issued")
    active = models.BooleanField(default=True, help_text="False once the request is rejected: the top-up may be invoiced again")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["order"], condition=Q(active=True), name="wallet_invoiceline_order_once"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="wallet_invoiceline_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} on request {self.request_id}"


class CreditNote(models.Model):
    """A refund of a top-up that was already invoiced: a numbered credit note against that invoice."""

    invoice = models.ForeignKey(InvoiceRequest, on_delete=models.PROTECT, related_name="credit_notes")
    order = models.ForeignKey(TopUpOrder, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.PositiveBigIntegerField(unique=True)
    amount = models.BigIntegerField(help_text="nanos credited")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="wallet_creditnote_amount")]

    def __str__(self) -> str:
        return f"Credit note {self.number}"

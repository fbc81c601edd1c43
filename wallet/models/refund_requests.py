"""Refund requests: a user asks for the unused balance of a top-up back; admin approves or rejects (issue 13).

Nothing leaves the balance while a request waits: approval runs the refund service (wallet/services/refunds.py),
which decides under the order's and the account's locks what is still refundable."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from wallet.models.topups import Refund, TopUpOrder


class RefundRequest(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="refund_requests")
    order = models.ForeignKey(TopUpOrder, on_delete=models.PROTECT, related_name="refund_requests")
    reason = models.TextField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    quoted = models.BigIntegerField(help_text="nanos of cash refundable when the user asked (a preview; approval re-checks)")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="request")
    reject_reason = models.TextField(blank=True, default="")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField(help_text="The target: REFUND_TARGET_BUSINESS_DAYS business days after the request")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["order"], condition=Q(status="requested"), name="wallet_refundreq_one_open"),
            models.CheckConstraint(condition=Q(quoted__gte=0), name="wallet_refundreq_quoted"),
        ]
        indexes = [models.Index(fields=["due_at"], condition=Q(status="requested"), name="wallet_refundreq_open_due")]

    def __str__(self) -> str:
        return f"Refund request {self.pk} ({self.order_id})"

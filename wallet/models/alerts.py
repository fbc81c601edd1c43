"""Alerts: each user's alert settings and low-balance state, and the log of customer webhook deliveries."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AlertSettings(models.Model):
    """One row per user, created on first use. `low_balance_alerted` is the once-per-crossing flag: set by a
    compare-and-swap when the available balance falls below the threshold (the alert is sent by the
    transaction that won), cleared the same way when it is back at or above it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_settings")
    low_balance_threshold = models.BigIntegerField(
        null=True, blank=True, help_text=_("nanos; blank means the default (LOW_BALANCE_THRESHOLD_USD), 0 turns it off")
    )
    low_balance_alerted = models.BooleanField(default=False)
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=100, blank=True, help_text=_("Signs deliveries; never shown again"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("alert settings")
        verbose_name_plural = _("alert settings")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(low_balance_threshold__isnull=True) | models.Q(low_balance_threshold__gte=0),
                name="wallet_alert_threshold_nonnegative",
            )
        ]

    def __str__(self) -> str:
        return f"alerts of {self.user_id}"


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to a user's webhook URL, with its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Failed")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_id = models.CharField(max_length=40, unique=True)
    event_type = models.CharField(max_length=40)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [models.Index(fields=["user", "-created_at"], name="wallet_delivery_user_recent")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"

"""Payment provider webhook events: stored once, processed by Celery, reprocessable from admin."""

from django.db import models


class WebhookEvent(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (not handled)"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=16)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="wallet_webhook_once")]
        indexes = [models.Index(fields=["status", "received_at"], name="wallet_webhook_status")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"


# --- redemption codes -------------------------------------------------------------------------------

"""A generation (`gen-...`) is one metered API request: its hold, its usage report and its charge;
it is also the usage record the console lists.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.catalog import ModelPrice
from billing.models.tokens import ApiToken, GatewayKey


class Generation(models.Model):
    """One metered request: hold, usage report and charge. Also the usage record."""

    # Filled by metering_hold on the row it returns, for the hold's answer (not stored).
    model_name: str = ""
    available: int | None = None

    class State(models.TextChoices):
        HELD = "held", _("Held")
        REPORTED = "reported", _("Reported")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired")

    class Outcome(models.TextChoices):
        PENDING = "", "—"
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class ChargeBasis(models.TextChoices):
        NONE = "", "—"
        REPORTED = "reported", _("Reported usage")
        ESTIMATE = "estimate", _("Estimate")
        COUNTED = "counted", _("Counted from the output")

    public_id = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generations")
    token = models.ForeignKey(ApiToken, on_delete=models.PROTECT, related_name="generations")
    gateway = models.ForeignKey(GatewayKey, on_delete=models.PROTECT, related_name="generations")
    request_id = models.CharField(max_length=100, null=True, blank=True, help_text="The gateway's own id, if sent")
    hold = models.OneToOneField("wallet.Hold", on_delete=models.PROTECT, related_name="generation")
    model = models.ForeignKey(ModelPrice, on_delete=models.PROTECT, related_name="generations")
    group_name = models.CharField(max_length=60)
    endpoint = models.CharField(max_length=100)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    # Estimate at hold time.
    est_input_tokens = models.PositiveIntegerField(default=0)
    est_output_tokens = models.PositiveIntegerField(default=0)
    est_units = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    rate = models.DecimalField(max_digits=8, decimal_places=4)
    price_snapshot = models.JSONField(help_text="The listed prices used, as charged")
    estimated_cost = models.BigIntegerField()
    token_held = models.BooleanField(
        default=True, db_default=True, help_text="The hold raised the token's held (a token with a quota or budget; one without is not locked per request)"
    )
    # Usage report.
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    units = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # Charge.
    final_cost = models.BigIntegerField(null=True, blank=True)
    charge_basis = models.CharField(max_length=16, choices=ChargeBasis.choices, blank=True, default="")
    over_estimate = models.BooleanField(
        default=False, db_default=False, help_text="The reported usage costs more than the hold froze"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deadline = models.DateTimeField()
    reported_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(estimated_cost__gte=0), name="billing_generation_estimate_nonnegative"),
            models.CheckConstraint(
                condition=Q(final_cost__isnull=True) | Q(final_cost__gte=0), name="billing_generation_cost_nonnegative"
            ),
            models.UniqueConstraint(
                fields=["gateway", "request_id"],
                condition=Q(request_id__isnull=False),
                name="billing_generation_gateway_request_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="billing_gen_user_recent"),
            models.Index(fields=["user", "token", "-id"], name="billing_gen_user_token"),
            models.Index(fields=["user", "model", "-id"], name="billing_gen_user_model"),
            models.Index(fields=["user", "state", "-id"], name="billing_gen_user_state"),
            models.Index(fields=["deadline"], condition=Q(state="held"), name="billing_gen_held_deadline"),
            models.Index(fields=["reported_at"], condition=Q(state="reported"), name="billing_gen_reported"),
        ]

    def __str__(self) -> str:
        return self.public_id

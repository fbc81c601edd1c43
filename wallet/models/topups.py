"""Top-up orders (bills), their payment methods and bonus rules, and refunds (DESIGN.md section 7)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from synstar.money import format_usd
from wallet.models.ledger import Transaction


class BonusRule(models.Model):
    """Bonus credit for a top-up. `exact` rules match one amount; `above` rules match any larger amount
    (the highest threshold below the amount wins). An exact match wins over an `above` rule."""

    class Match(models.TextChoices):
        EXACT = "exact", _("Exactly this amount")
        ABOVE = "above", _("More than this amount")

    match = models.CharField(max_length=8, choices=Match.choices)
    amount = models.BigIntegerField(help_text="nanos of the top-up")
    bonus_fixed = models.BigIntegerField(default=0, help_text="nanos added")
    bonus_percent = models.DecimalField(max_digits=6, decimal_places=3, default=0, help_text="percent of the top-up added")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["amount"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, bonus_fixed__gte=0, bonus_percent__gte=0), name="wallet_bonusrule_nonnegative"),
            models.UniqueConstraint(fields=["match", "amount"], name="wallet_bonusrule_unique"),
        ]

    def __str__(self) -> str:
        bonus = f"+${format_usd(self.bonus_fixed)}" if self.bonus_fixed else f"+{self.bonus_percent.normalize()}%"
        return f"{self.get_match_display()} ${format_usd(self.amount)}: {bonus}"


class PaymentMethod(models.Model):
    class Provider(models.TextChoices):
        STRIPE = "stripe", _("Stripe")
        AIRWALLEX = "airwallex", _("Airwallex")

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_method = models.CharField(max_length=40, help_text="e.g. card, alipay, wechat_pay")
    countries = models.JSONField(default=list, blank=True, help_text="ISO country codes; empty: every country")
    is_enabled = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=100)

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name

    def available_in(self, country: str) -> bool:
        return not self.countries or (country or "").upper() in self.countries


class TopUpOrder(models.Model):
    """A bill: one top-up order and its payment status."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PAID = "paid", _("Paid")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")

    class Source(models.TextChoices):
        CHECKOUT = "checkout", "Checkout"
        AUTO = "auto", "Auto top-up (saved card)"

    order_no = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topup_orders")
    method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="orders")
    provider = models.CharField(max_length=16, help_text="stripe, airwallex or sandbox")
    amount = models.BigIntegerField(help_text="nanos paid, and base credits")
    bonus = models.BigIntegerField(default=0, help_text="nanos of bonus credits")
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CHECKOUT,
                              help_text="checkout: the user paid at the provider; auto: an off-session charge of a saved card")
    checkout_id = models.CharField(max_length=255, blank=True, default="", help_text="Checkout session / payment intent")
    checkout_url = models.URLField(max_length=2000, blank=True, default="")
    payment_id = models.CharField(max_length=255, blank=True, default="", help_text="Provider payment reference")
    failure_reason = models.CharField(max_length=255, blank=True, default="", help_text="Shown to the user: our words")
    provider_error = models.TextField(blank=True, default="", help_text="The provider's own answer to a failed call (admin only)")
    refunded_amount = models.BigIntegerField(default=0, help_text="nanos of base credits removed by refunds")
    cash_refunded = models.BigIntegerField(default=0, help_text="nanos of money returned to the payer")
    bonus_clawed = models.BigIntegerField(default=0, help_text="nanos of bonus clawed back")
    refund_seen = models.BigIntegerField(
        default=0, help_text="nanos: the largest cumulative refunded figure the provider has reported for this order"
    )
    refund_watermark = models.BigIntegerField(
        default=0,
        help_text="nanos of the provider's cumulative refunded figure already accounted for (our own refunds "
        "count from the moment their intent is recorded); a cumulative event only counts what lies above it",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Reconciliation: when the provider was last asked about this open order, how often, and when next.
    last_checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    reconcile_checks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, bonus__gte=0), name="wallet_order_amounts"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0, refunded_amount__lte=models.F("amount"))
                & Q(bonus_clawed__gte=0, bonus_clawed__lte=models.F("bonus")),
                name="wallet_order_refunds_bounded",
            ),
            # At most one auto top-up in flight per user (wallet/services/autotopup.py).
            models.UniqueConstraint(fields=["user"], condition=Q(source="auto", status__in=["pending", "paid"]),
                                    name="wallet_order_one_open_auto"),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="wallet_order_user_recent"),
            models.Index(fields=["user", "status", "-id"], name="wallet_order_user_status"),
            models.Index(fields=["created_at"], condition=Q(status__in=["pending", "paid"]), name="wallet_order_open"),
            models.Index(fields=["next_check_at", "-created_at"], condition=Q(status__in=["pending", "paid"]),
                         name="wallet_order_next_check"),
            models.Index(fields=["provider", "checkout_id"], name="wallet_order_checkout"),
            models.Index(fields=["provider", "payment_id"], name="wallet_order_payment"),
        ]

    def __str__(self) -> str:
        return self.order_no

    @property
    def total_credits(self) -> int:
        return self.amount + self.bonus


class Refund(models.Model):
    """One refund or dispute of an order: the credits it removed and, if it failed or the dispute was won,
    the credits given back. Admin refunds are recorded (status pending, credits already removed) before
    the provider is called, with the idempotency key sent to the provider in `provider_key`."""

    class Source(models.TextChoices):
        ADMIN = "admin", _("Admin")
        PROVIDER = "provider", _("Provider refund")
        DISPUTE = "dispute", _("Dispute")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending (sent to the provider)")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed (credits restored)")
        REVERSED = "reversed", _("Dispute won (credits restored)")

    order = models.ForeignKey(TopUpOrder, on_delete=models.PROTECT, related_name="refunds")
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    key = models.CharField(max_length=200, unique=True, help_text="Provider refund/dispute id, or the admin form's key")
    provider_key = models.CharField(
        max_length=64, blank=True, default="", help_text="Idempotency key / request id sent to the provider (admin refunds)"
    )
    requested = models.BigIntegerField(help_text="nanos of cash asked for (admin) or already refunded (provider)")
    base_removed = models.BigIntegerField(default=0)
    bonus_removed = models.BigIntegerField(default=0)
    shortfall = models.BigIntegerField(default=0, help_text="Cash the provider returned beyond what could be clawed back")
    base_restored = models.BigIntegerField(default=0)
    bonus_restored = models.BigIntegerField(default=0)
    provider_refund_id = models.CharField(max_length=255, blank=True, default="")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="refund")
    restore_transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="refund_restored"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reason = models.TextField(blank=True, default="")
    failure_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider_key"], condition=~Q(provider_key=""), name="wallet_refund_provider_key"),
            models.CheckConstraint(
                condition=Q(base_restored__lte=models.F("base_removed")) | Q(base_removed=0),
                name="wallet_refund_restore_bounded",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(status="pending"), name="wallet_refund_pending"),
            models.Index(fields=["order", "provider_refund_id"], name="wallet_refund_provider_id"),
        ]

    def __str__(self) -> str:
        return f"Refund of {self.order_id} ({self.source})"

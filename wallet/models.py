"""The credit ledger (DESIGN.md section 4).

Every change of credit is a posting: one `Transaction` with a kind and a unique idempotency key, and two
or more `Entry` rows whose signed amounts sum to zero. Entries are append-only. User accounts cache
`balance` and `held`, updated in the same database transaction as their entries; system accounts carry no
cached balance (their balance is the sum of their entries). A `Hold` freezes credit without entries.

On PostgreSQL, triggers (see the migrations) refuse UPDATE/DELETE of entries and transactions and refuse
to commit a transaction whose entries do not sum to zero: backstops behind the services.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SystemAccount(models.TextChoices):
    """Counterparty accounts. Sources (payments, grants...) go negative as they hand out credit."""

    PAYMENTS_STRIPE = "payments:stripe", "Payments received via Stripe"
    PAYMENTS_AIRWALLEX = "payments:airwallex", "Payments received via Airwallex"
    PAYMENTS_SANDBOX = "payments:sandbox", "Payments received via the sandbox provider"
    BONUS = "bonus", "Top-up bonus"
    PROMOTIONS = "promotions", "Promotions"
    REDEMPTION = "redemption", "Redemption codes"
    SIGNUP_GRANTS = "signup_grants", "Signup grants"
    REFERRAL_REWARDS = "referral_rewards", "Referral rewards"
    REVENUE = "revenue", "Usage revenue"
    REFUNDS = "refunds", "Refunds paid out"
    ADJUSTMENTS = "adjustments", "Manual adjustments"


class Account(models.Model):
    class Kind(models.TextChoices):
        MAIN = "main", "Main (spendable credit)"
        REFERRAL = "referral", "Referral proceeds"
        SYSTEM = "system", "System"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts"
    )
    code = models.CharField(max_length=64, unique=True, help_text="user:<id>:main, or the system account code")
    balance = models.BigIntegerField(default=0, help_text="nanos; cached sum of entries (user accounts only)")
    held = models.BigIntegerField(default=0, help_text="nanos frozen by open holds")
    consumed = models.BigIntegerField(default=0, help_text="nanos charged for usage, all time")
    request_count = models.BigIntegerField(default=0, help_text="settled requests, all time")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_account_held_nonnegative"),
            models.CheckConstraint(
                condition=Q(kind="system", user__isnull=True) | (~Q(kind="system") & Q(user__isnull=False)),
                name="wallet_account_user_iff_not_system",
            ),
            # System accounts would be a hot row on every request: no cached balance at all.
            models.CheckConstraint(
                condition=~Q(kind="system") | Q(balance=0, held=0, consumed=0, request_count=0),
                name="wallet_account_system_uncached",
            ),
            # Only the main account can go below zero, and only through settlement (checked by check_ledger).
            models.CheckConstraint(
                condition=Q(kind="main") | Q(balance__gte=0), name="wallet_account_nonmain_nonnegative"
            ),
            models.CheckConstraint(condition=Q(kind="main") | Q(held=0), name="wallet_account_holds_on_main_only"),
            models.UniqueConstraint(
                fields=["user", "kind"], condition=Q(user__isnull=False), name="wallet_account_one_per_user_kind"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def available(self) -> int:
        return self.balance - self.held


class Transaction(models.Model):
    class Kind(models.TextChoices):
        SIGNUP_GRANT = "signup_grant", "Signup grant"
        GRANT = "grant", "Grant"
        CREDIT = "credit", "Credit"
        DEBIT = "debit", "Debit"
        ADJUSTMENT = "adjustment", "Manual adjustment"
        SETTLEMENT = "settlement", "Usage settlement"
        TOPUP = "topup", "Top-up"
        BONUS = "bonus", "Top-up bonus"
        REFUND = "refund", "Refund"
        REFUND_REVERSAL = "refund_reversal", "Refund reversed (credits restored)"
        BONUS_CLAWBACK = "bonus_clawback", "Bonus claw-back"
        REDEMPTION = "redemption", "Code redemption"
        REFERRAL_REWARD = "referral_reward", "Referral reward"
        REFERRAL_REVERSAL = "referral_reversal", "Referral reward reversal"
        REFERRAL_TRANSFER = "referral_transfer", "Referral transfer"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")
    reason = models.TextField(blank=True, default="", help_text="Why (required for manual adjustments)")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | (Q(actor__isnull=False) & ~Q(reason="")),
                name="wallet_transaction_adjustment_has_actor_and_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class Entry(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="signed nanos; positive credits the account")

    class Meta:
        verbose_name_plural = "entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="wallet_entry_amount_nonzero")]
        indexes = [models.Index(fields=["account", "-id"], name="wallet_entry_account_recent")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount}"


class Hold(models.Model):
    """Credit frozen on a main account, pending settlement (TigerBeetle's pending transfer)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired (released by the sweeper)"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    amount = models.BigIntegerField(help_text="nanos frozen")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    expires_at = models.DateTimeField()
    settled_amount = models.BigIntegerField(null=True, blank=True)
    settlement = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="settled_hold"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="wallet_hold_amount_nonnegative"),
            models.CheckConstraint(
                condition=Q(settled_amount__isnull=True) | Q(settled_amount__gte=0),
                name="wallet_hold_settled_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(status="settled") | Q(settled_amount__isnull=True),
                name="wallet_hold_settled_amount_iff_settled",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="open"), name="wallet_hold_open_by_deadline"
            ),
            models.Index(fields=["account"], condition=Q(status="open"), name="wallet_hold_open_by_account"),
        ]

    def __str__(self) -> str:
        return f"Hold #{self.pk} ({self.status})"




# --- top-ups ----------------------------------------------------------------------------------------


class BonusRule(models.Model):
    """Bonus credit for a top-up. `exact` rules match one amount; `above` rules match any larger amount
    (the highest threshold below the amount wins). An exact match wins over an `above` rule."""

    class Match(models.TextChoices):
        EXACT = "exact", "Exactly this amount"
        ABOVE = "above", "More than this amount"

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
        from synstar.money import format_usd

        bonus = f"+${format_usd(self.bonus_fixed)}" if self.bonus_fixed else f"+{self.bonus_percent.normalize()}%"
        return f"{self.get_match_display()} ${format_usd(self.amount)}: {bonus}"


class PaymentMethod(models.Model):
    class Provider(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        AIRWALLEX = "airwallex", "Airwallex"

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
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    order_no = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topup_orders")
    method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="orders")
    provider = models.CharField(max_length=16, help_text="stripe, airwallex or sandbox")
    amount = models.BigIntegerField(help_text="nanos paid, and base credits")
    bonus = models.BigIntegerField(default=0, help_text="nanos of bonus credits")
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    checkout_id = models.CharField(max_length=255, blank=True, default="", help_text="Checkout session / payment intent")
    checkout_url = models.URLField(max_length=2000, blank=True, default="")
    payment_id = models.CharField(max_length=255, blank=True, default="", help_text="Provider payment reference")
    failure_reason = models.CharField(max_length=255, blank=True, default="", help_text="Shown to the user: our words")
    provider_error = models.TextField(blank=True, default="", help_text="The provider's own answer to a failed call (admin only)")
    refunded_amount = models.BigIntegerField(default=0, help_text="nanos of base credits removed by refunds")
    cash_refunded = models.BigIntegerField(default=0, help_text="nanos of money returned to the payer")
    bonus_clawed = models.BigIntegerField(default=0, help_text="nanos of bonus clawed back")
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
        ADMIN = "admin", "Admin"
        PROVIDER = "provider", "Provider refund"
        DISPUTE = "dispute", "Dispute"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (sent to the provider)"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (credits restored)"
        REVERSED = "reversed", "Dispute won (credits restored)"

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


class CodeBatch(models.Model):
    """A batch of redemption codes sharing value, limits and eligibility."""

    campaign = models.CharField(max_length=100)
    value = models.BigIntegerField(help_text="nanos credited per redemption")
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(default=1, help_text="Total redemptions allowed per code")
    per_account_limit = models.PositiveIntegerField(default=1, help_text="Redemptions of one code per account")
    new_accounts_only = models.BooleanField(default=False, help_text="Only accounts younger than NEW_ACCOUNT_DAYS")
    no_topup_only = models.BooleanField(default=False, help_text="Only accounts without a completed top-up")
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+",
                                           help_text="If any are listed, only these accounts")
    allowed_countries = models.JSONField(default=list, blank=True, help_text="ISO codes; empty: every country")
    is_promotional = models.BooleanField(default=True, help_text="Funded by promotions (else by the redemption account)")
    is_disabled = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "code batches"
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0, max_uses__gte=1, per_account_limit__gte=1), name="wallet_codebatch_limits"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} #{self.pk}"


class RedemptionCode(models.Model):
    """One code. Only its hash is stored: a database leak does not hand codes out."""

    batch = models.ForeignKey(CodeBatch, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8, help_text="Last characters, to recognise a code in support")
    uses = models.PositiveIntegerField(default=0)
    is_disabled = models.BooleanField(default=False)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(uses__gte=0), name="wallet_code_uses_nonnegative")]

    def __str__(self) -> str:
        return f"…{self.hint}"


class Redemption(models.Model):
    code = models.ForeignKey(RedemptionCode, on_delete=models.PROTECT, related_name="redemptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="redemptions")
    amount = models.BigIntegerField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, null=True, related_name="redemption")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["code", "user"], name="wallet_redemption_code_user")]

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
from django.utils.translation import gettext_lazy as _


class SystemAccount(models.TextChoices):
    """Counterparty accounts. Sources (payments, grants...) go negative as they hand out credit."""

    PAYMENTS_STRIPE = "payments:stripe", _("Payments received via Stripe")
    PAYMENTS_AIRWALLEX = "payments:airwallex", _("Payments received via Airwallex")
    PAYMENTS_SANDBOX = "payments:sandbox", _("Payments received via the sandbox provider")
    BONUS = "bonus", _("Top-up bonus")
    PROMOTIONS = "promotions", _("Promotions")
    REDEMPTION = "redemption", _("Redemption codes")
    SIGNUP_GRANTS = "signup_grants", _("Signup grants")
    REFERRAL_REWARDS = "referral_rewards", _("Referral rewards")
    REVENUE = "revenue", _("Usage revenue")
    REFUNDS = "refunds", _("Refunds paid out")
    ADJUSTMENTS = "adjustments", _("Manual adjustments")


class Account(models.Model):
    class Kind(models.TextChoices):
        MAIN = "main", _("Main (spendable credit)")
        REFERRAL = "referral", _("Referral proceeds")
        SYSTEM = "system", _("System")

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
    # Set by posting_create on the row it returns: True when the idempotency key returned an earlier posting.
    replayed: bool = False

    class Kind(models.TextChoices):
        SIGNUP_GRANT = "signup_grant", _("Signup grant")
        GRANT = "grant", _("Grant")
        CREDIT = "credit", _("Credit")
        DEBIT = "debit", _("Debit")
        ADJUSTMENT = "adjustment", _("Manual adjustment")
        SETTLEMENT = "settlement", _("Usage settlement")
        TOPUP = "topup", _("Top-up")
        BONUS = "bonus", _("Top-up bonus")
        REFUND = "refund", _("Refund")
        REFUND_REVERSAL = "refund_reversal", _("Refund reversed (credits restored)")
        BONUS_CLAWBACK = "bonus_clawback", _("Bonus claw-back")
        REDEMPTION = "redemption", _("Code redemption")
        REFERRAL_REWARD = "referral_reward", _("Referral reward")
        REFERRAL_REVERSAL = "referral_reversal", _("Referral reward reversal")
        REFERRAL_TRANSFER = "referral_transfer", _("Referral transfer")

    kind = models.CharField(max_length=32, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")
    reason = models.TextField(blank=True, default="", help_text="Why (required for manual adjustments); operators only")
    user_reason = models.CharField(
        max_length=255, blank=True, default="", db_default="",
        help_text="Why, in words for the user: shown in their balance history (manual adjustments)",
    )
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
    # The posting's kind, copied by posting_create so that a statement finds an account's postings without
    # reading its usage charges. NULL on usage settlements (written by holds_settle): the balance history
    # sums those per day from the daily usage rollup instead of listing a million rows.
    statement_kind = models.CharField(max_length=32, null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="wallet_entry_amount_nonzero")]
        indexes = [
            models.Index(fields=["account", "-id"], name="wallet_entry_account_recent"),
            models.Index(
                fields=["account", "-id"], condition=Q(statement_kind__isnull=False), name="wallet_entry_statement"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount}"


class Lease(models.Model):
    """A slice of a main account's available balance reserved by one process for a hot account's holds.

    Taking or growing a lease raises the account's `held` by its `size` with one conditional update (a
    durable hold); holds placed on it raise the lease's `used` instead of the account's `held`, so the
    account row leaves the per-request path. Settlement never locks a lease: it closes the hold, records
    in `lease_spent` what it charged (up to the hold) and lowers the account's balance by the charge and
    its `held` by that spent part. The holder *folds* its closed holds into the lease when it renews or
    runs out of room: `used` falls by their amounts, `size` by what they spent (the rest returns to the
    lease's free part). Closing a lease (returned by its holder, or expired by the sweeper after
    `expires_at`) folds every hold on it and hands the rest back; its holds still open then count on the
    account directly and settle once.
    Invariants (check_ledger): `held` = open holds not in a lease + open leases' `size` - what the closed
    holds still in them spent; an open lease's
    `used` = the amounts of the holds in it (open, or closed and not yet folded); `used <= size`.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RETURNED = "returned", "Returned by its holder"
        EXPIRED = "expired", "Expired (released by the sweeper)"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="leases")
    size = models.BigIntegerField(help_text="nanos reserved on the account's held")
    used = models.BigIntegerField(default=0, help_text="nanos of the open holds placed on it")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    holder = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that took it")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(used__gte=0) & Q(used__lte=models.F("size")), name="wallet_lease_used_within_size"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="open"), name="wallet_lease_open_by_deadline"),
            models.Index(fields=["account"], condition=Q(status="open"), name="wallet_lease_open_by_account"),
        ]

    def __str__(self) -> str:
        return f"Lease #{self.pk} ({self.status})"


class Hold(models.Model):
    """Credit frozen on a main account, pending settlement (TigerBeetle's pending transfer). A hold with
    a `lease` was placed against that lease: while `in_lease` it counts in the lease's `used`, not in the
    account's `held` (until the lease folds it once closed, or the lease closes while it is open)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired (released by the sweeper)")

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    lease = models.ForeignKey(Lease, on_delete=models.PROTECT, null=True, blank=True, related_name="holds")
    in_lease = models.BooleanField(default=False, db_default=False, help_text="counted in its lease's used (not folded yet)")
    lease_spent = models.BigIntegerField(
        default=0, db_default=0, help_text="what settling it took from its lease (up to the hold): the lease's size falls by it when folded"
    )
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
            models.CheckConstraint(
                condition=Q(lease_spent__gte=0) & Q(lease_spent__lte=models.F("amount")), name="wallet_hold_lease_spent_within_amount"
            ),
            models.CheckConstraint(condition=Q(in_lease=False) | Q(lease__isnull=False), name="wallet_hold_in_lease_has_lease"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="open"), name="wallet_hold_open_by_deadline"
            ),
            models.Index(fields=["account"], condition=Q(status="open"), name="wallet_hold_open_by_account"),
            models.Index(fields=["lease"], condition=Q(in_lease=True), name="wallet_hold_in_lease"),
        ]

    def __str__(self) -> str:
        return f"Hold #{self.pk} ({self.status})"




# --- top-ups ----------------------------------------------------------------------------------------

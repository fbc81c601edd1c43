"""Token groups (which tier a token bills at), users' API tokens and gateway keys."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.catalog import BillingTier


class TokenGroup(models.Model):
    name = models.SlugField(max_length=60, unique=True)
    description = models.CharField(max_length=255, blank=True)
    tier = models.ForeignKey(BillingTier, on_delete=models.PROTECT, related_name="groups")
    is_public = models.BooleanField(default=True, help_text="Open to every user; otherwise to the listed users")
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="token_groups")
    is_default = models.BooleanField(default=False, help_text="The group new tokens get when none is chosen")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="billing_one_default_group")
        ]

    def __str__(self) -> str:
        return self.name


class BudgetPeriod(models.TextChoices):
    # The values are PostgreSQL date_trunc units: the SQL computes the period's start from them.
    DAY = "day", _("day")
    WEEK = "week", _("week")
    MONTH = "month", _("month")


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    group = models.ForeignKey(TokenGroup, on_delete=models.PROTECT, related_name="tokens")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the key; the key is never stored")
    key_prefix = models.CharField(max_length=16, help_text="Shown in lists to recognise the key")
    quota = models.BigIntegerField(null=True, blank=True, help_text="nanos; blank means unlimited")
    used = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    is_enabled = models.BooleanField(default=True)
    can_read_account = models.BooleanField(
        default=False,
        help_text="May read the account through the API (wallet, bills, referrals, every token's usage). "
        "Without it the token serves inference and sees only its own requests.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Model names; empty allows all")
    allowed_ips = models.JSONField(default=list, blank=True, help_text="IPs or CIDR ranges; empty allows all")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Budget per period (besides the lifetime quota): enforced by the hold's conditional UPDATE, rolled
    # over (period_used back to 0) by settlement when a new period began (billing/selectors/budgets.py).
    budget = models.BigIntegerField(null=True, blank=True, help_text=_("nanos per period; blank means no budget"))
    budget_period = models.CharField(max_length=5, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    period_start = models.DateTimeField(null=True, blank=True, help_text=_("Start of the period period_used counts"))
    period_used = models.BigIntegerField(default=0, help_text=_("nanos settled in the current period"))
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text=_("Requests per minute; blank: no limit"))
    # Alerts sent (80 or 100 percent), compare-and-swapped so each is sent once (per period for budgets).
    alert_quota_level = models.PositiveSmallIntegerField(default=0)
    alert_budget_level = models.PositiveSmallIntegerField(default=0)
    alert_budget_period = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(budget__isnull=True) | Q(budget__gte=0)) & Q(period_used__gte=0),
                name="billing_token_budget_nonnegative",
            ),
            models.CheckConstraint(condition=Q(used__gte=0) & Q(held__gte=0), name="billing_token_used_held_nonnegative"),
            models.CheckConstraint(
                condition=Q(quota__isnull=True) | Q(quota__gte=0), name="billing_token_quota_nonnegative"
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="billing_token_user_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def remaining(self) -> int | None:
        return None if self.quota is None else self.quota - self.used - self.held


class GatewayKey(models.Model):
    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=16)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    # DRF treats request.user as an authenticated principal.
    is_authenticated = True

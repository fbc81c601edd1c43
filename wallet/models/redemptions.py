"""Redemption codes: batches, hashed codes and redemptions (DESIGN.md section 8)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from wallet.models.ledger import Transaction


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

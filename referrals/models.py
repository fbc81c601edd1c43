"""Invite codes, who invited whom, reward rules and accrued rewards (DESIGN.md section 8)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class InviteCode(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invite_code")
    code = models.CharField(max_length=16, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.code


class Referral(models.Model):
    """One inviter per user, set at signup; never the user themselves."""

    invitee = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="referral")
    inviter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referrals_made")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(invitee=models.F("inviter")), name="referrals_no_self_referral")]
        indexes = [models.Index(fields=["inviter", "-created_at"], name="referrals_by_inviter")]

    @property
    def masked_email(self) -> str:
        """What the inviter sees of who joined: not their full address."""
        return email_mask(self.invitee.email)


def email_mask(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:2]}***@{domain}"


class RewardRule(models.Model):
    """The active rule decides rewards for top-ups completed while it is active."""

    name = models.CharField(max_length=60, default="default")
    commission_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0, help_text="Of the invitee's base top-up")
    first_topup_reward = models.BigIntegerField(default=0, help_text="nanos, once, on the invitee's first completed top-up")
    window_days = models.PositiveIntegerField(null=True, blank=True, help_text="Days after signup that top-ups earn rewards; blank: forever")
    cap_per_invitee = models.BigIntegerField(null=True, blank=True, help_text="nanos; most one invitee can earn the inviter")
    min_transfer = models.BigIntegerField(default=1_000_000_000, help_text="nanos; smallest transfer to the balance")
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="referrals_one_active_rule"),
            models.CheckConstraint(condition=Q(commission_percent__gte=0, commission_percent__lte=100, first_topup_reward__gte=0, min_transfer__gte=0),
                                   name="referrals_rule_bounds"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.commission_percent.normalize()}%)"


class ReferralReward(models.Model):
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="rewards")
    order = models.OneToOneField("wallet.TopUpOrder", on_delete=models.PROTECT, related_name="referral_reward")
    amount = models.BigIntegerField(help_text="nanos accrued to the inviter's referral account")
    reversed_amount = models.BigIntegerField(default=0)
    reversal_shortfall = models.BigIntegerField(default=0, help_text="Reversal the inviter's proceeds could not cover")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0, reversed_amount__gte=0, reversal_shortfall__gte=0),
                                              name="referrals_reward_nonnegative")]

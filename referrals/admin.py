from django.contrib import admin

from referrals.models import InviteCode, Referral, ReferralReward, RewardRule
from synstar.admin_shared import ReadOnlyAdmin
from synstar.money import format_usd


@admin.register(RewardRule)
class RewardRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "commission_percent", "first_topup_usd", "window_days", "cap_usd", "min_transfer_usd", "is_active"]

    @admin.display(description="First top-up reward")
    def first_topup_usd(self, obj):
        return f"${format_usd(obj.first_topup_reward)}"

    @admin.display(description="Cap per invitee")
    def cap_usd(self, obj):
        return "none" if obj.cap_per_invitee is None else f"${format_usd(obj.cap_per_invitee)}"

    @admin.display(description="Minimum transfer")
    def min_transfer_usd(self, obj):
        return f"${format_usd(obj.min_transfer)}"


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["invitee", "inviter", "created_at"]
    search_fields = ["invitee__email", "inviter__email"]


@admin.register(ReferralReward)
class ReferralRewardAdmin(ReadOnlyAdmin):
    list_display = ["order", "referral", "amount", "reversed_amount", "reversal_shortfall", "created_at"]


@admin.register(InviteCode)
class InviteCodeAdmin(ReadOnlyAdmin):
    list_display = ["code", "user", "created_at"]
    search_fields = ["code", "user__email"]

from django.contrib import admin

from referrals.models import InviteCode, Referral, ReferralReward, RewardRule
from synstar.admin_shared import ReadOnlyAdmin, UsdAdminMixin, usd_column


@admin.register(RewardRule)
class RewardRuleAdmin(UsdAdminMixin, admin.ModelAdmin):
    usd_fields = ("first_topup_reward", "cap_per_invitee", "min_transfer")
    list_display = ["name", "commission_percent", "first_topup_usd", "window_days", "cap_usd", "min_transfer_usd", "is_active"]

    @admin.display(description="First top-up reward")
    def first_topup_usd(self, obj):
        return usd_column(obj.first_topup_reward)

    @admin.display(description="Cap per invitee")
    def cap_usd(self, obj):
        return "none" if obj.cap_per_invitee is None else usd_column(obj.cap_per_invitee)

    @admin.display(description="Minimum transfer")
    def min_transfer_usd(self, obj):
        return usd_column(obj.min_transfer)


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["invitee", "inviter", "created_at"]
    search_fields = ["invitee__email", "inviter__email"]


@admin.register(ReferralReward)
class ReferralRewardAdmin(UsdAdminMixin, ReadOnlyAdmin):
    usd_fields = ("amount", "reversed_amount", "reversal_shortfall")
    list_display = ["order", "referral", "amount_usd", "reversed_amount_usd", "reversal_shortfall_usd", "created_at"]


@admin.register(InviteCode)
class InviteCodeAdmin(ReadOnlyAdmin):
    list_display = ["code", "user", "created_at"]
    search_fields = ["code", "user__email"]

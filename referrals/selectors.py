from dataclasses import dataclass

from django.db.models import F, Sum

from referrals.models import Referral, ReferralReward
from wallet.models import Account


@dataclass(frozen=True)
class ReferralStats:
    proceeds: int  # to be used: the referral account balance
    total_revenue: int  # all rewards earned, net of reversals
    invited: int


def referral_stats(*, user) -> ReferralStats:
    proceeds = Account.objects.filter(user=user, kind=Account.Kind.REFERRAL).values_list("balance", flat=True).first() or 0
    revenue = ReferralReward.objects.filter(referral__inviter=user).aggregate(s=Sum(F("amount") - F("reversed_amount")))["s"] or 0
    return ReferralStats(proceeds=proceeds, total_revenue=revenue, invited=Referral.objects.filter(inviter=user).count())

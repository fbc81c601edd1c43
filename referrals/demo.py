from referrals.models import RewardRule
from synstar.money import usd


def reward_rule_load() -> None:
    """Demo rule: 10% of invitees' base top-ups, $1 on their first top-up, for a year, up to $100 each."""
    if not RewardRule.objects.filter(is_active=True).exists():
        RewardRule.objects.create(name="default", commission_percent=10, first_topup_reward=usd("1"),
                                  window_days=365, cap_per_invitee=usd("100"), min_transfer=usd("1"))

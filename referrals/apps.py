from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "referrals"
    verbose_name = "Referrals"

    def ready(self):
        # Invite rewards follow top-ups: accrue when one completes, reverse when it is refunded. The wallet
        # calls these through its registry; it does not import referrals.
        from referrals.services import reward_accrue, reward_reverse
        from wallet.services.topups import topup_hooks_register

        topup_hooks_register(completed=reward_accrue, refunded=reward_reverse)

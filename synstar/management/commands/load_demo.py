from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.demo import catalog_load, channels_load, grant_discount_group
from referrals.demo import reward_rule_load
from synstar.accounts.models import User
from synstar.onboarding import user_create, user_signup_complete
from wallet.demo import topup_config_load

DEMO_USERS = [
    # email, password, country, is_staff
    ("admin@synstar.local", "synstar-admin", "US", True),
    ("demo@synstar.local", "synstar-demo", "US", False),
]


class Command(BaseCommand):
    help = "Load demo data (idempotent): an admin, a demo user, and the catalog the console needs."

    @transaction.atomic
    def handle(self, *args, **options):
        catalog_load()
        channels_load()
        topup_config_load()
        reward_rule_load()
        self.stdout.write("price catalog, tiers, token groups, the sandbox channel, bonus rules, payment methods and the invite reward rule loaded")
        for email, password, country, is_staff in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = user_create(email=email, password=password, country=country, is_staff=is_staff)
                self.stdout.write(f"created {email}")
            else:
                user_signup_complete(user=user)
            EmailAddress.objects.update_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
            if not is_staff:
                grant_discount_group(user)
        self.stdout.write(self.style.SUCCESS("demo data loaded"))

from django.core.management.base import BaseCommand, CommandError

from billing.models import TokenGroup
from billing.services.tokens import token_create
from synstar.accounts.models import User
from synstar.errors import SynstarError
from synstar.money import parse_usd


class Command(BaseCommand):
    help = "Create an API (sk-) token for a user and print it once."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--group", help="Token group name (default: the default group)")
        parser.add_argument("--quota", help="Quota in USD, e.g. 25.00 (default: unlimited)")
        parser.add_argument("--name", default="CLI token")
        parser.add_argument(
            "--can-read-account", action="store_true",
            help="Also let the token read the account through the API (wallet, bills, referrals, all usage)",
        )

    def handle(self, *args, email, group, quota, name, can_read_account=False, **options):
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email!r}.")
        try:
            token_group = TokenGroup.objects.get(name=group) if group else None
        except TokenGroup.DoesNotExist:
            names = ", ".join(TokenGroup.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No token group {group!r} (groups: {names}).") from None
        try:
            quota_nanos = parse_usd(quota, allow_zero=True, field="--quota") if quota is not None else None
            token, raw = token_create(
                user=user, name=name, group=token_group, quota=quota_nanos, can_read_account=can_read_account
            )
        except SynstarError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"API token {token.name!r} for {user.email} in group {token.group.name!r} (shown once):")
        self.stdout.write(raw)

from django.core.management.base import BaseCommand, CommandError

from billing.services.tokens import gateway_key_create
from synstar.errors import SynstarError


class Command(BaseCommand):
    help = "Create a gateway (gw-) key for the metering API and print it once."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            gateway, raw = gateway_key_create(name=name)
        except SynstarError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Gateway key for {gateway.name!r} (shown once, store it now):")
        self.stdout.write(raw)

from django.core.management.base import BaseCommand

from billing.services.usage import usage_days_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the daily usage rollup (dashboard chart, balance history) from the settled generations. "
        "Settlement keeps it up to date; run this after restoring data or to check it. Settlements wait while it runs."
    )

    def handle(self, *args, **options):
        rows = usage_days_rebuild()
        self.stdout.write(f"Daily usage rollup rebuilt: {rows} rows.")

from django.core.management.base import BaseCommand, CommandError

from wallet.selectors.ledger import ledger_problems


class Command(BaseCommand):
    help = "Verify the ledger invariants; print what is wrong and exit non-zero when any fails."

    def handle(self, *args, **options):
        problems = ledger_problems()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"ledger check failed: {len(problems)} problem(s)")
        self.stdout.write(self.style.SUCCESS("ledger OK"))

from django.apps import AppConfig


class SynstarConfig(AppConfig):
    """The console shell above the apps: onboarding, the user admin with balances, and the commands that
    load demo data and start the stack. It may import every app; no app imports it."""

    name = "synstar"
    verbose_name = "SynStar console"

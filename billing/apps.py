from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing, tokens and metering"

    def ready(self):
        # The wallet's balance history shows usage per day from billing's daily rollup, through its registry;
        # it does not import billing.
        from billing.selectors.usage import usage_day_totals
        from wallet.selectors.history import usage_days_register

        usage_days_register(usage_day_totals)

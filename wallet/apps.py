from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "wallet"
    verbose_name = "Wallet and ledger"

    def ready(self):
        # A completed top-up emails its receipt (after the completion commits), through the top-up hooks.
        from wallet.services.invoices import receipt_on_completion
        from wallet.services.topups import topup_hooks_register

        topup_hooks_register(completed=receipt_on_completion)

from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "wallet"
    verbose_name = "Wallet and ledger"

    def ready(self) -> None:
        from wallet.services.autotopup import autotopup_order_closed
        from wallet.services.topups import topup_hooks_register

        topup_hooks_register(closed=autotopup_order_closed)  # a failed auto top-up turns auto top-up off

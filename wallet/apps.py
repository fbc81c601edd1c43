from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "wallet"
    verbose_name = "Wallet and ledger"

    def ready(self):
        # A completed top-up emails its receipt (after the completion commits), through the top-up hooks.
        # Alerts follow top-ups and refunds (webhook events, the low-balance alert re-armed): the wallet's own
        # hooks, in the same registry other apps use.
        from wallet.services.alerts import refund_completed_notify, topup_completed_notify
        from wallet.services.invoices import receipt_on_completion
        from wallet.services.topups import topup_hooks_register

        topup_hooks_register(completed=receipt_on_completion)
        topup_hooks_register(completed=topup_completed_notify, refunded=refund_completed_notify)
        from wallet.services.autotopup import autotopup_order_closed
        from wallet.services.refund_requests import refund_request_refund_failed
        from wallet.services.refunds import REFUND_FAILED_HOOKS

        if refund_request_refund_failed not in REFUND_FAILED_HOOKS:
            REFUND_FAILED_HOOKS.append(refund_request_refund_failed)

        topup_hooks_register(closed=autotopup_order_closed)  # a failed auto top-up turns auto top-up off

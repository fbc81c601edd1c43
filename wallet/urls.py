"""The wallet's console pages, API and webhook endpoints (included by synstar/urls.py)."""

from django.urls import path

from wallet.apis import alerts as alert_apis
from wallet.apis import autotopup as autotopup_apis
from wallet.apis import invoices as invoice_apis
from wallet.apis import ledger as ledger_apis
from wallet.apis import redemptions as redemption_apis
from wallet.apis import refund_requests as refund_request_apis
from wallet.apis import topups as topup_apis
from wallet.views import alerts, autotopup, invoices, ledger, redemptions, refund_requests, topups, webhooks

console_urlpatterns = [
    path("", ledger.dashboard, name="dashboard"),
    path("history/", ledger.balance_history_page, name="history"),
    path("wallet/", topups.wallet_page, name="wallet"),
    path("wallet/quote/", topups.topup_quote, name="topup-quote"),
    path("wallet/topup/", topups.topup_start, name="topup-start"),
    path("wallet/redeem/", redemptions.redeem, name="redeem"),
    path("wallet/autotopup/", autotopup.autotopup_save, name="autotopup-save"),
    path("wallet/autotopup/card/", autotopup.autotopup_card_setup, name="autotopup-card"),
    path("wallet/autotopup/card/remove/", autotopup.autotopup_card_remove, name="autotopup-card-remove"),
    path("bills/", topups.bills_page, name="bills"),
    path("bills/<str:order_no>/status/", topups.bill_status, name="bill-status"),
    path("bills/<str:order_no>/receipt.pdf", invoices.receipt_download, name="receipt-pdf"),
    path("invoices/", invoices.invoices_page, name="invoices"),
    path("invoices/<int:request_id>.pdf", invoices.invoice_download, name="invoice-pdf"),
    path("invoices/credit-notes/<int:note_id>.pdf", invoices.credit_note_download, name="credit-note-pdf"),
    path("refunds/", refund_requests.refunds_page, name="refunds"),
    path("alerts/", alerts.alerts_page, name="alerts"),
    path("alerts/test/", alerts.alerts_test, name="alerts-test"),
    path("sandbox/checkout/<str:checkout_id>/", topups.sandbox_checkout, name="sandbox-checkout"),
    path("checkout/airwallex/<str:order_no>/", topups.airwallex_checkout, name="airwallex-checkout"),
]

api_urlpatterns = [
    path("wallet", ledger_apis.WalletApi.as_view(), name="wallet"),
    path("credits", ledger_apis.CreditsApi.as_view(), name="credits"),
    path("topups", topup_apis.TopUpCreateApi.as_view(), name="topups"),
    path("bills", topup_apis.BillListApi.as_view(), name="bills"),
    path("redemptions", redemption_apis.RedemptionCreateApi.as_view(), name="redemptions"),
    path("invoice-requests", invoice_apis.InvoiceRequestListCreateApi.as_view(), name="invoice-requests"),
    path("refund-requests", refund_request_apis.RefundRequestListCreateApi.as_view(), name="refund-requests"),
    path("alerts", alert_apis.AlertSettingsApi.as_view(), name="alerts"),
    path("alerts/test", alert_apis.AlertTestApi.as_view(), name="alerts-test"),
    path("alerts/deliveries", alert_apis.DeliveryListApi.as_view(), name="alerts-deliveries"),
    path("autotopup", autotopup_apis.AutoTopUpApi.as_view(), name="autotopup"),
    path("autotopup/card", autotopup_apis.AutoTopUpCardSetupApi.as_view(), name="autotopup-card"),
]

webhook_urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="webhook-stripe"),
    path("webhooks/airwallex/", webhooks.airwallex_webhook, name="webhook-airwallex"),
]

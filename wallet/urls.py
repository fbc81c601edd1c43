"""The wallet's console pages, API and webhook endpoints (included by synstar/urls.py)."""

from django.urls import path

from wallet.apis import ledger as ledger_apis
from wallet.apis import redemptions as redemption_apis
from wallet.apis import topups as topup_apis
from wallet.views import ledger, redemptions, topups, webhooks

console_urlpatterns = [
    path("", ledger.dashboard, name="dashboard"),
    path("wallet/", topups.wallet_page, name="wallet"),
    path("wallet/quote/", topups.topup_quote, name="topup-quote"),
    path("wallet/topup/", topups.topup_start, name="topup-start"),
    path("wallet/redeem/", redemptions.redeem, name="redeem"),
    path("bills/", topups.bills_page, name="bills"),
    path("bills/<str:order_no>/status/", topups.bill_status, name="bill-status"),
    path("sandbox/checkout/<str:checkout_id>/", topups.sandbox_checkout, name="sandbox-checkout"),
    path("checkout/airwallex/<str:order_no>/", topups.airwallex_checkout, name="airwallex-checkout"),
]

api_urlpatterns = [
    path("wallet", ledger_apis.WalletApi.as_view(), name="wallet"),
    path("credits", ledger_apis.CreditsApi.as_view(), name="credits"),
    path("topups", topup_apis.TopUpCreateApi.as_view(), name="topups"),
    path("bills", topup_apis.BillListApi.as_view(), name="bills"),
    path("redemptions", redemption_apis.RedemptionCreateApi.as_view(), name="redemptions"),
]

webhook_urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="webhook-stripe"),
    path("webhooks/airwallex/", webhooks.airwallex_webhook, name="webhook-airwallex"),
]

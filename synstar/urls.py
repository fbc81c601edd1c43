from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from billing import apis as billing_apis
from billing import views as billing_views
from billing.urls import api_urlpatterns as billing_api
from synstar import views as shell
from synstar.accounts import views as account_views
from referrals import apis as referral_apis
from referrals import views as referral_views
from wallet import order_apis, redemption_views, topup_views, webhooks
from wallet import views as wallet_views
from wallet.urls import api_urlpatterns as wallet_api

console_patterns = [
    path("", wallet_views.dashboard, name="dashboard"),
    path("wallet/", topup_views.wallet_page, name="wallet"),
    path("wallet/quote/", topup_views.topup_quote, name="topup-quote"),
    path("wallet/topup/", topup_views.topup_start, name="topup-start"),
    path("wallet/redeem/", redemption_views.redeem, name="redeem"),
    path("invite/", referral_views.invite_page, name="invite"),
    path("invite/transfer/", referral_views.transfer, name="referral-transfer"),
    path("bills/", topup_views.bills_page, name="bills"),
    path("sandbox/checkout/<str:checkout_id>/", topup_views.sandbox_checkout, name="sandbox-checkout"),
    path("checkout/airwallex/<str:order_no>/", topup_views.airwallex_checkout, name="airwallex-checkout"),
    path("tokens/", billing_views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/edit/", billing_views.token_edit, name="token-edit"),
    path("tokens/<int:token_id>/toggle/", billing_views.token_toggle, name="token-toggle"),
    path("tokens/<int:token_id>/delete/", billing_views.token_remove, name="token-delete"),
    path("usage/", billing_views.usage_page, name="usage"),
    path("pricing/", billing_views.pricing_page, name="pricing"),
    path("settings/", account_views.settings_page, name="settings"),
]

api_v1 = [
    *wallet_api,
    *billing_api,
    path("topups", order_apis.TopUpCreateApi.as_view(), name="topups"),
    path("bills", order_apis.BillListApi.as_view(), name="bills"),
    path("redemptions", redemption_views.RedemptionCreateApi.as_view(), name="redemptions"),
    path("referrals", referral_apis.ReferralApi.as_view(), name="referrals"),
    path("referrals/transfer", referral_apis.ReferralTransferApi.as_view(), name="referral-transfer"),
]

urlpatterns = [
    path("", include((console_patterns, "console"))),
    path("accounts/", include("allauth.urls")),
    path("r/<str:code>/", referral_views.invite_landing, name="invite-landing"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("v1/generation", billing_apis.GenerationApi.as_view(), name="generation"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="webhook-stripe"),
    path("webhooks/airwallex/", webhooks.airwallex_webhook, name="webhook-airwallex"),
    path("healthz", shell.healthz, name="healthz"),
    # Unknown API paths answer in the one error shape, whatever DEBUG says.
    re_path(r"^(api|v1|webhooks)/", shell.not_found),
]

handler404 = "synstar.views.not_found"
handler500 = "synstar.views.server_error"

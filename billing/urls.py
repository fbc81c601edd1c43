"""Billing's console pages and API (included by synstar/urls.py)."""

from django.urls import path

from billing import apis, views

console_urlpatterns = [
    path("tokens/", views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/edit/", views.token_edit, name="token-edit"),
    path("tokens/<int:token_id>/toggle/", views.token_toggle, name="token-toggle"),
    path("tokens/<int:token_id>/delete/", views.token_remove, name="token-delete"),
    path("usage/", views.usage_page, name="usage"),
    path("pricing/", views.pricing_page, name="pricing"),
]

api_urlpatterns = [
    path("metering/holds", apis.HoldCreateApi.as_view(), name="metering-hold"),
    path("metering/holds/<str:public_id>/usage", apis.UsageReportApi.as_view(), name="metering-usage"),
    path("usage", apis.UsageListApi.as_view(), name="usage"),
    path("pricing", apis.PricingApi.as_view(), name="pricing"),
    path("tokens", apis.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>", apis.TokenDetailApi.as_view(), name="token-detail"),
    path("key", apis.KeyApi.as_view(), name="key"),
]

# The OpenAI-style API at the root (/v1/...).
root_urlpatterns = [
    path("v1/generation", apis.GenerationApi.as_view(), name="generation"),
]

"""Billing's console pages and API (included by synstar/urls.py)."""

from django.urls import path

from billing.apis import catalog as catalog_apis
from billing.apis import metering as metering_apis
from billing.apis import tokens as token_apis
from billing.views import catalog as catalog_views
from billing.views import metering as metering_views
from billing.views import tokens as token_views

console_urlpatterns = [
    path("tokens/", token_views.tokens_page, name="tokens"),
    path("tokens/<int:token_id>/edit/", token_views.token_edit, name="token-edit"),
    path("tokens/<int:token_id>/toggle/", token_views.token_toggle, name="token-toggle"),
    path("tokens/<int:token_id>/delete/", token_views.token_remove, name="token-delete"),
    path("usage/", metering_views.usage_page, name="usage"),
    path("usage/<str:public_id>/", metering_views.generation_page, name="generation"),
    path("pricing/", catalog_views.pricing_page, name="pricing"),
]

api_urlpatterns = [
    path("metering/holds", metering_apis.HoldCreateApi.as_view(), name="metering-hold"),
    path("metering/holds/<str:public_id>/usage", metering_apis.UsageReportApi.as_view(), name="metering-usage"),
    path("usage", metering_apis.UsageListApi.as_view(), name="usage"),
    path("pricing", catalog_apis.PricingApi.as_view(), name="pricing"),
    path("tokens", token_apis.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>", token_apis.TokenDetailApi.as_view(), name="token-detail"),
    path("key", token_apis.KeyApi.as_view(), name="key"),
]

# The OpenAI-style API at the root (/v1/...).
root_urlpatterns = [
    path("v1/generation", metering_apis.GenerationApi.as_view(), name="generation"),
]

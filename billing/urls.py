from django.urls import path

from billing import apis

api_urlpatterns = [
    path("metering/holds", apis.HoldCreateApi.as_view(), name="metering-hold"),
    path("metering/holds/<str:public_id>/usage", apis.UsageReportApi.as_view(), name="metering-usage"),
    path("usage", apis.UsageListApi.as_view(), name="usage"),
    path("pricing", apis.PricingApi.as_view(), name="pricing"),
    path("tokens", apis.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>", apis.TokenDetailApi.as_view(), name="token-detail"),
    path("key", apis.KeyApi.as_view(), name="key"),
]

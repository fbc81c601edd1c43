from django.urls import path

from wallet import apis

api_urlpatterns = [
    path("wallet", apis.WalletApi.as_view(), name="wallet"),
    path("credits", apis.CreditsApi.as_view(), name="credits"),
]

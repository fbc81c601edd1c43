"""The project's URLs: each app brings its own console, API and root lists."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from billing import urls as billing
from referrals import urls as referrals
from synstar import views as shell
from synstar.accounts import views as account_views
from synstar.health import HealthView
from wallet import urls as wallet

console_patterns = [
    *wallet.console_urlpatterns,
    *referrals.console_urlpatterns,
    *billing.console_urlpatterns,
    path("settings/", account_views.settings_page, name="settings"),
]

api_v1 = [
    *wallet.api_urlpatterns,
    *billing.api_urlpatterns,
    *referrals.api_urlpatterns,
]

urlpatterns = [
    path("", include((console_patterns, "console"))),
    path("accounts/", include("allauth.urls")),
    path("i18n/setlang/", account_views.set_language, name="set_language"),  # the language switch
    *referrals.root_urlpatterns,
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    *billing.root_urlpatterns,
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    *wallet.webhook_urlpatterns,
    path("favicon.ico", shell.favicon, name="favicon"),
    path("healthz", shell.healthz, name="healthz"),  # liveness: the process answers, nothing else is touched
    # readiness, for load balancers: the database, the cache and the task broker answer
    path("health/", HealthView.as_view(), name="health"),
    # Unknown API paths answer in the one error shape, whatever DEBUG says.
    re_path(r"^(api|v1|webhooks)/", shell.not_found),
]

handler404 = "synstar.views.not_found"
handler500 = "synstar.views.server_error"

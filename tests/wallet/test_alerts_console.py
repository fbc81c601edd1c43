"""The console's alerts page (threshold, webhook URL, the secret shown once, the test button, the delivery
log), the low-balance banner, and the budget fields of the tokens page."""

import pytest
from django.test import override_settings

from billing.models import ApiToken
from synstar.money import usd
from tests.factories import make_user
from wallet.models import AlertSettings, WebhookDelivery

pytestmark = pytest.mark.django_db


def test_the_banner_shows_while_the_balance_is_below_the_threshold(client):
    poor, rich = make_user(), make_user(balance="20")  # $0.50 (below the default $5) and $20.50
    client.force_login(poor)
    page = client.get("/").content.decode()
    assert 'data-testid="low-balance-banner"' in page and "$0.50" in page and "$5.00" in page
    client.force_login(rich)
    assert 'data-testid="low-balance-banner"' not in client.get("/").content.decode()
    AlertSettings.objects.create(user=rich, low_balance_threshold=usd("25"))
    assert 'data-testid="low-balance-banner"' in client.get("/wallet/").content.decode()


@override_settings(ALERT_WEBHOOK_ALLOW_PRIVATE=False)
def test_settings_save_and_the_secret_is_shown_once(client):
    user = make_user()
    client.force_login(user)
    page = client.post("/alerts/", {"threshold": "2.50", "webhook_url": "https://hooks.example.com/synstar"}, follow=True)
    row = AlertSettings.objects.get(user=user)
    assert row.low_balance_threshold == usd("2.50") and row.webhook_url == "https://hooks.example.com/synstar"
    body = page.content.decode()
    assert row.webhook_secret.startswith("whsec_") and row.webhook_secret in body
    assert row.webhook_secret not in client.get("/alerts/").content.decode()  # once
    # Saving again keeps the secret; asking for a new one replaces it (and shows it once).
    client.post("/alerts/", {"threshold": "", "webhook_url": "https://hooks.example.com/synstar"})
    assert AlertSettings.objects.get(user=user).webhook_secret == row.webhook_secret
    assert AlertSettings.objects.get(user=user).low_balance_threshold is None
    client.post("/alerts/", {"threshold": "", "webhook_url": "https://hooks.example.com/synstar", "new_secret": "on"})
    assert AlertSettings.objects.get(user=user).webhook_secret != row.webhook_secret


def test_bad_input_is_a_clear_error_and_changes_nothing(client):
    user = make_user()
    client.force_login(user)
    for data, message in (({"threshold": "abc", "webhook_url": ""}, "decimal"),
                          ({"threshold": "-1", "webhook_url": ""}, ""),
                          ({"threshold": "", "webhook_url": "ftp://example.com/x"}, "http"),
                          ({"threshold": "", "webhook_url": "http://example.com/x"}, "https"),
                          ({"threshold": "", "webhook_url": "https://[::1"}, "http"),  # malformed host: 200 with the error
                          ({"threshold": "", "webhook_url": "https://[zz]/x"}, "http")):
        page = client.post("/alerts/", data)
        assert page.status_code == 200 and message in page.content.decode()
    assert not AlertSettings.objects.filter(user=user).exclude(webhook_url="", low_balance_threshold=None).exists()


def test_the_test_button_logs_a_delivery(client):
    user = make_user()
    client.force_login(user)
    page = client.post("/alerts/test/", follow=True).content.decode()
    assert "Set a webhook URL first." in page and not WebhookDelivery.objects.exists()
    client.post("/alerts/", {"threshold": "", "webhook_url": "https://hooks.example.com/synstar"})
    page = client.post("/alerts/test/", follow=True).content.decode()
    delivery = WebhookDelivery.objects.get(user=user)
    assert delivery.event_type == "webhook.test" and delivery.event_id in page
    assert 'id="deliveries"' in page


def test_admin_lists_deliveries_and_never_shows_the_secret(client, admin_user):
    user = make_user()
    client.force_login(user)
    client.post("/alerts/", {"threshold": "", "webhook_url": "https://hooks.example.com/synstar"})
    client.post("/alerts/test/")
    secret = AlertSettings.objects.get(user=user).webhook_secret
    client.force_login(admin_user)
    for url in ("/admin/wallet/webhookdelivery/", "/admin/wallet/alertsettings/",
                f"/admin/wallet/alertsettings/{AlertSettings.objects.get(user=user).pk}/change/",
                f"/admin/wallet/webhookdelivery/{WebhookDelivery.objects.get().pk}/change/"):
        page = client.get(url)
        assert page.status_code == 200 and secret not in page.content.decode()


def test_the_token_form_sets_a_budget_and_the_row_shows_the_next_reset(client):
    from billing.demo import catalog_load

    catalog_load()
    user = make_user()
    client.force_login(user)
    client.post("/tokens/", {"name": "batch", "group": "default", "unlimited": "on", "budget": "3",
                             "budget_period": "day", "rpm_limit": "60"})
    token = ApiToken.objects.get(user=user)
    assert (token.budget, token.budget_period, token.rpm_limit) == (usd("3"), "day", 60)
    page = client.get("/tokens/").content.decode()
    assert "$0.00 / $3.00" in page and "per day" in page and "resets" in page and "60 requests/min" in page
    page = client.post(f"/tokens/{token.pk}/edit/", {"name": "batch", "group": "default", "unlimited": "on",
                                                     "budget": "x", "budget_period": "week"})
    assert "decimal" in page.content.decode()
    assert ApiToken.objects.get(pk=token.pk).budget_period == "day"


def test_admin_token_page_shows_the_budget_in_dollars(client, admin_user):
    from billing.demo import catalog_load
    from billing.services.tokens import token_create

    catalog_load()
    user = make_user()
    token, _ = token_create(user=user, name="nightly", budget=usd("2.50"), budget_period="day", rpm_limit=30)
    client.force_login(admin_user)
    page = client.get(f"/admin/billing/apitoken/{token.pk}/change/").content.decode()
    assert "$2.50" in page and "2500000000" not in page

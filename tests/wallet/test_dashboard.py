import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from synstar.money import usd
from tests.factories import make_user
from tests.metering import meter_hold, meter_settle
from wallet.services.ledger import main_account

pytestmark = pytest.mark.django_db


def test_dashboard_shows_statistics_and_activity(client):
    user = make_user(balance="99.50")
    main_account(user=user)
    meter_settle(meter_hold(user, usd("1")), usd("0.25"))
    meter_hold(user, usd("3"))
    client.force_login(user)
    page = client.get(reverse("console:dashboard")).content.decode()
    for text in ["$99.75", "$3.00", "$96.75", "$0.25", "Usage", "Welcome credit", "Pending reconciliation"]:
        assert text in page, text


def test_dashboard_htmx_refresh_returns_only_the_panel(client):
    client.force_login(make_user())
    response = client.get(reverse("console:dashboard"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'id="stats"' in body and "<html" not in body


def test_dashboard_shows_debt(client):
    user = make_user()
    hold = meter_hold(user, usd("0.50"))
    meter_settle(hold, usd("0.80"))
    client.force_login(user)
    page = client.get(reverse("console:dashboard")).content.decode()
    assert "-$0.30" in page and "New requests are refused" in page


def test_dashboard_query_count_does_not_grow_with_history(client):
    user = make_user(balance="100")
    client.force_login(user)
    client.get(reverse("console:dashboard"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("console:dashboard"))
    main_account(user=user)
    for _ in range(30):
        meter_settle(meter_hold(user, usd("0.01")), usd("0.01"))
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("console:dashboard"))
    assert len(many) == len(few)


def test_empty_state_and_anonymous_redirect(client):
    assert client.get(reverse("console:dashboard")).status_code == 302
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.conf.settings.SIGNUP_GRANT_USD", "0")
        user = make_user()
    client.force_login(user)
    assert "No activity yet" in client.get(reverse("console:dashboard")).content.decode()

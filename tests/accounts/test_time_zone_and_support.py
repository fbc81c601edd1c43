"""Times in the user's zone (the account's setting, else the browser's), emails that say SynStar, the favicon,
and error pages that offer support with the details filled in."""

import re
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from synstar.accounts.models import User
from tests.factories import make_user
from wallet.models import Transaction

pytestmark = pytest.mark.django_db


def activity_time(client) -> str:
    page = client.get("/").content.decode()
    return re.search(r'<table class="data stack" id="activity">.*?<td data-label="[^"]*">([^<]+)</td>', page, re.S).group(1)


@pytest.fixture
def member(client):
    user = make_user(email="zone@example.com", balance="5")
    client.force_login(user)
    return user


def local(user, zone: str) -> str:
    """The newest activity's time, as it reads in `zone`."""
    at = Transaction.objects.filter(entries__account__user=user).order_by("-created_at").first().created_at
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def test_times_follow_the_browser_until_the_account_chooses_a_zone(client, member):
    assert activity_time(client) == local(member, "UTC")  # no setting, no browser zone: the site's (UTC)
    client.cookies["tz"] = "America/New_York"
    assert activity_time(client) == local(member, "America/New_York")
    assert "America/New_York" in client.get("/").content.decode()  # the zone is shown beside the times

    response = client.post("/settings/", {"time_zone": "Asia/Shanghai"})
    assert response.status_code == 302
    assert User.objects.get(pk=member.pk).time_zone == "Asia/Shanghai"
    assert activity_time(client) == local(member, "Asia/Shanghai")  # the setting wins over the browser
    assert "Times are shown in Asia/Shanghai." in client.get("/settings/").content.decode()

    client.post("/settings/", {"time_zone": ""})  # back to the browser's
    assert activity_time(client) == local(member, "America/New_York")


def test_an_unknown_zone_is_refused_next_to_the_field_and_nothing_changes(client, member):
    response = client.post("/settings/", {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("Choose a time zone from the list.") == 1 and 'data-testid="time-zone-error"' in page
    assert User.objects.get(pk=member.pk).time_zone == ""
    client.cookies["tz"] = "Not/AZone"  # a browser's bogus zone is ignored
    assert activity_time(client) == local(member, "UTC")


def test_account_emails_say_synstar_not_the_host(client):
    make_user(email="forgot@example.com")
    client.post("/accounts/password/reset/", {"email": "forgot@example.com"})
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject.startswith("[SynStar]")
    assert message.body.startswith("Hello from SynStar!")
    assert "Hello from testserver" not in message.body and "Thank you for using SynStar!" in message.body


def test_signup_confirmation_email_says_synstar(client):
    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "correct horse battery", "password2": "correct horse battery", "country": "US"},
    )
    assert mail.outbox, "no confirmation email was sent"
    body = mail.outbox[-1].body
    assert "Hello from SynStar!" in body and "create a SynStar account" in body


def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith(".svg")
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page and "favicon" in page


def test_error_pages_offer_support_with_the_request_id(client, settings):
    settings.SUPPORT_EMAIL = "help@synstar.example"
    client.force_login(make_user(email="lost@example.com"))
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-abc123")
    assert response.status_code == 404
    mailto = unquote(re.search(r'href="(mailto:help@synstar.example[^"]+)"', response.content.decode()).group(1))
    assert "Account: lost@example.com" in mailto and "Request id: req-abc123" in mailto and "Page: /no-such-page/" in mailto


def test_without_a_support_address_no_link_is_shown(client, settings):
    settings.SUPPORT_EMAIL = ""
    page = client.get("/no-such-page/").content.decode()
    assert "mailto:" not in page and "contact support" in page

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from synstar.accounts.models import User
from synstar.money import usd
from synstar.onboarding import user_signup_complete
from wallet.models import Transaction
from wallet.selectors.ledger import wallet_statistics

pytestmark = pytest.mark.django_db

SIGNUP = {"email": "Ada@Example.com", "password1": "a long passphrase 42", "password2": "a long passphrase 42", "country": "DE"}


def confirmation_link() -> str:
    body = mail.outbox[-1].body
    return re.search(r"https?://\S+/accounts/confirm-email/\S+/", body).group(0)


def test_signup_creates_account_with_country_and_the_grant_once(client):
    response = client.post(reverse("account_signup"), SIGNUP)
    assert response.status_code == 302
    user = User.objects.get(email="ada@example.com")
    assert user.country.code == "DE" and user.status == "active"
    assert wallet_statistics(user=user).balance == usd("0.50")
    user_signup_complete(user=user)  # any second call is harmless
    assert Transaction.objects.filter(kind="signup_grant", idempotency_key=f"signup-grant:{user.pk}").count() == 1
    assert wallet_statistics(user=user).balance == usd("0.50")


def test_signup_requires_a_country_and_writes_nothing_without_one(client):
    response = client.post(reverse("account_signup"), {**SIGNUP, "country": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not User.objects.exists()


def test_duplicate_email_in_any_case_creates_nothing_and_does_not_leak_the_account(client):
    client.post(reverse("account_signup"), SIGNUP)
    client.logout()
    response = client.post(reverse("account_signup"), {**SIGNUP, "email": "ADA@example.COM"})
    # Enumeration-safe: the page looks the same as a new signup; no second account.
    assert response.status_code == 302
    assert User.objects.count() == 1


def test_email_must_be_verified_before_the_console_opens(client):
    client.post(reverse("account_signup"), SIGNUP)
    assert len(mail.outbox) == 1
    client.logout()
    response = client.post(reverse("account_login"), {"login": "ada@example.com", "password": SIGNUP["password1"]})
    assert response.status_code == 302 and "confirm-email" in response["Location"]
    assert client.get(reverse("console:dashboard")).status_code == 302

    link = confirmation_link()
    client.post(link)
    assert EmailAddress.objects.get(email="ada@example.com").verified
    client.post(reverse("account_login"), {"login": "ada@example.com", "password": SIGNUP["password1"]})
    dashboard = client.get(reverse("console:dashboard"))
    assert dashboard.status_code == 200
    assert "$0.50" in dashboard.content.decode()


def test_signup_grant_is_configurable_and_zero_disables_it(client, settings):
    settings.SIGNUP_GRANT_USD = "2.00"
    client.post(reverse("account_signup"), SIGNUP)
    assert wallet_statistics(user=User.objects.get()).balance == usd("2")

    settings.SIGNUP_GRANT_USD = "0"
    client.logout()
    client.post(reverse("account_signup"), {**SIGNUP, "email": "bob@example.com"})
    bob = User.objects.get(email="bob@example.com")
    assert wallet_statistics(user=bob).balance == 0
    assert not Transaction.objects.filter(idempotency_key=f"signup-grant:{bob.pk}").exists()


def test_password_reset_sends_a_link_and_the_new_password_works(client, make_user):
    user = make_user(email="reset@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client.post(reverse("account_reset_password"), {"email": "reset@example.com"})
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+/", mail.outbox[-1].body).group(0)
    form = client.get(link, follow=True)
    client.post(form.redirect_chain[-1][0], {"password1": "brand new secret 99", "password2": "brand new secret 99"})
    assert client.login(email="reset@example.com", password="brand new secret 99")


def test_logout(client, make_user):
    user = make_user()
    client.force_login(user)
    client.post(reverse("account_logout"))
    assert client.get(reverse("console:dashboard")).status_code == 302

"""A newcomer in a real browser: sign up, confirm the email, land on the dashboard with the grant."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signup_confirm_email_and_see_the_signup_grant(page):
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", "grace@example.com")
    page.fill("input[name=password1]", "a long passphrase 42")
    page.fill("input[name=password2]", "a long passphrase 42")
    page.select_option("select[name=country]", "GB")
    page.click("button[type=submit]")
    expect(page.locator("body")).to_contain_text("Verify Your Email Address")

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    page.click("button[type=submit]")

    expect(page.get_by_test_id("balance")).to_have_text("$0.50")
    expect(page.get_by_test_id("available")).to_have_text("$0.50")
    expect(page.get_by_test_id("held")).to_have_text("$0.00")
    expect(page.locator("table.data")).to_contain_text("Welcome credit")

    page.click("[data-nav=settings]")
    expect(page.locator("dl.facts")).to_contain_text("United Kingdom")

    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_wrong_password_says_so_and_does_not_sign_in(page, django_user_model):
    from allauth.account.models import EmailAddress

    from tests.factories import make_user

    user = make_user(email="known@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "known@example.com")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator("body")).to_contain_text("not correct")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

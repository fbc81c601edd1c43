"""Auto top-up in a real browser, desktop and phone: save a card through (the stand-in for) Stripe's setup
Checkout and its signed webhook, set "below $10, top up $50" with a daily cap, turn it on: the balance is
already below the threshold, so the saved card is charged at once and the wallet page shows the card, the
charge and the new balance. Then a declined card turns it off with the reason on the page. The page never
scrolls sideways."""

import os
import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from synstar.celery import app
from tests.browser.conftest import sign_in
from tests.factories import make_user
from tests.fakes.providers import FakeStripe
from wallet.demo import topup_config_load
from wallet.models import AutoTopUp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STRIPE_PAGE = """<!doctype html><title>Stripe Checkout (test stand-in)</title>
<h1>Set up a card with SynStar</h1><p>Test stand-in for Stripe's hosted setup page.</p>"""


@pytest.fixture
def stripe(settings):
    fake = FakeStripe()
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_API_BASE = fake.api_key, fake.webhook_secret, fake.url
    app.conf.task_always_eager = True  # the webhook task and the charge run where they are queued, as a worker would
    yield fake
    app.conf.task_always_eager = False
    fake.close()


def shoot(page, name: str, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/{name}-{width}.png", full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_save_a_card_turn_auto_top_up_on_and_see_the_charge(page, stripe, width):
    topup_config_load()
    make_user(email="auto@example.com", balance="5")  # $5.50 with the signup grant
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "auto@example.com")
    page.goto("/wallet/#autotopup")
    panel = page.locator("#autotopup")
    expect(panel).to_contain_text("Saved card and auto top-up")
    expect(page.get_by_test_id("saved-card")).to_have_text("None")
    expect(page.locator("#at-enabled")).to_be_disabled()
    shoot(page, "autotopup-empty", width)

    # Save a card: our server opens a setup Checkout Session and sends the browser to Stripe's page.
    page.route("https://checkout.stripe.test/**", lambda route: route.fulfill(status=200, content_type="text/html", body=STRIPE_PAGE))
    page.get_by_test_id("save-card").click()
    expect(page).to_have_url(re.compile(r"^https://checkout\.stripe\.test/c/pay/cs_test_"))
    session_id = page.url.rsplit("/", 1)[1]
    assert stripe.sessions[session_id]["mode"] == "setup"
    # The user enters a card at Stripe; Stripe signs and sends checkout.session.completed and redirects back.
    session = stripe.complete_setup(session_id, brand="visa", last4="4242", exp_month=7, exp_year=2031)
    body = stripe.event("checkout.session.completed", session)
    assert Client().post("/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=stripe.sign(body)).status_code == 200
    page.goto(session["success_url"])
    expect(page.get_by_test_id("saved-card")).to_have_text("Visa •••• 4242")
    expect(panel).to_contain_text("Expires 07/2031")

    # Below $10, top up $50, at most $200 a day; on. Available is $5.50: the first top-up runs at once.
    page.fill("#at-threshold", "10")
    page.fill("#at-amount", "50")
    page.fill("#at-cap", "200")
    page.check("#at-enabled")
    page.get_by_test_id("autotopup-save").click()
    expect(page.locator("body")).to_contain_text("Auto top-up settings saved.")
    expect(page.get_by_test_id("autotopup-status")).to_contain_text("On")
    expect(panel).to_contain_text("Below $10.00, add $50.00")
    expect(page.get_by_test_id("charged-today")).to_have_text("$50.00")
    row = page.locator("#autotopups tbody tr").first
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("$50.00")
    shoot(page, "autotopup-on", width)
    page.click("[data-nav=dashboard]")
    expect(page.get_by_test_id("balance")).to_have_text("$55.50")

    # The card starts being declined; a top-up triggered now fails, turns auto top-up off and says why.
    setting = AutoTopUp.objects.get(user__email="auto@example.com")
    stripe.card_outcomes[setting.payment_method_id] = "card_declined"
    page.goto("/wallet/#autotopup")
    page.fill("#at-threshold", "100")
    page.get_by_test_id("autotopup-save").click()
    expect(page.get_by_test_id("autotopup-disabled")).to_contain_text("Your card was declined.")
    expect(page.get_by_test_id("autotopup-status")).to_contain_text("Off")
    expect(page.locator("#autotopups tbody tr").first).to_contain_text("Failed")
    shoot(page, "autotopup-declined", width)

"""Alert settings in a real browser, desktop and phone: the low-balance banner leads to the alerts page; the
threshold and webhook URL are saved, the signing secret is shown once, "Send test event" logs a delivery
that reaches a local endpoint with a valid signature, and the page never scrolls sideways."""

import os
import pathlib

import pytest
from playwright.sync_api import expect

from billing.demo import catalog_load
from tests.browser.conftest import sign_in
from tests.factories import make_user
from tests.wallet.test_alerts import Receiver, verify
from wallet.models import WebhookDelivery
from wallet.services.alerts import webhook_deliver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = pathlib.Path(os.environ.get("SCREENSHOT_DIR") or pathlib.Path(__file__).resolve().parent.parent / "artifacts")


@pytest.mark.parametrize("width", [1280, 390])
def test_alert_settings_on_desktop_and_phone(page, settings, width):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    catalog_load()
    email = f"alerts-{width}@example.com"
    make_user(email=email)  # $0.50: below the default threshold of $5
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, email)
    page.goto("/")
    banner = page.get_by_test_id("low-balance-banner")
    expect(banner).to_contain_text("$0.50")
    banner.get_by_role("link", name="Alert settings").click()
    expect(page.locator("h1")).to_have_text("Alerts and notifications")
    expect(page.get_by_test_id("send-test")).to_be_disabled()

    with Receiver() as receiver:
        page.fill("input[name=threshold]", "0.25")
        page.fill("input[name=webhook_url]", receiver.url)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".alert.success")).to_contain_text("Alert settings saved.")
        secret = page.locator("#new-secret").text_content()
        assert secret.startswith("whsec_")
        expect(page.get_by_test_id("low-balance-banner")).to_have_count(0)  # $0.50 is above $0.25
        page.get_by_test_id("send-test").click()
        expect(page.locator("#deliveries")).to_contain_text("webhook.test")
        expect(page.locator("#new-secret")).to_have_count(0)  # shown once
        webhook_deliver(delivery_id=WebhookDelivery.objects.get(user__email=email).pk)  # what the worker does
        page.reload()
        expect(page.locator("#deliveries")).to_contain_text("Delivered")
        expect(page.locator("#deliveries")).to_contain_text("HTTP 200")
        (headers, body), = receiver.received
        assert verify(headers, body, secret)["type"] == "webhook.test"

    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"alerts-{width}.png"), full_page=True)
    page.goto("/tokens/")
    page.fill("input[name=name]", "nightly")
    page.fill("input[name=budget]", "2")
    page.select_option("select[name=budget_period]", "day")
    page.fill("input[name=rpm_limit]", "30")
    page.click("text=Create token")
    expect(page.get_by_test_id("token-budget")).to_contain_text("$0.00 / $2.00")
    expect(page.get_by_test_id("token-budget")).to_contain_text("resets")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(ARTIFACTS / f"tokens-budget-{width}.png"), full_page=True)

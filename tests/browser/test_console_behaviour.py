"""In a real browser: a bill updates by itself after checkout and stops at its final status; the pay button
follows the amount's validity; times follow the browser's time zone."""

import pytest
from playwright.sync_api import expect

from synstar.money import usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.services.topups import order_complete, order_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_bill_updates_by_itself_after_checkout(page):
    topup_config_load()
    user = make_user(email="poll@example.com")
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    sign_in(page, "poll@example.com")
    page.goto(f"/bills/?paid={order.order_no}")
    answer = page.get_by_test_id("bill-return")
    expect(answer).to_contain_text("Waiting for the payment provider")
    row = page.locator(f"#bill-{order.order_no}")
    expect(row).to_contain_text("Pending")
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id="pi_poll")  # the webhook lands
    expect(answer).to_contain_text("Payment complete: $103.00", timeout=10_000)
    expect(row).to_contain_text("Completed", timeout=10_000)
    expect(answer).not_to_have_attribute("hx-trigger", "every 2s")  # final: no more polling
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/status/" in r.url else None)
    page.wait_for_timeout(4500)
    assert requests == []


def test_pay_button_follows_the_amount(page):
    topup_config_load()
    make_user(email="amount@example.com")
    sign_in(page, "amount@example.com")
    page.goto("/wallet/")
    pay = page.get_by_test_id("checkout")
    expect(pay).to_be_enabled()
    page.fill("#amount", "12x")
    expect(pay).to_be_disabled()
    expect(page.get_by_test_id("quote-error")).to_have_text("Enter an amount such as 25.00.")
    expect(page.locator("#amount")).to_have_attribute("aria-invalid", "true")
    page.fill("#amount", "25")
    expect(page.get_by_test_id("quote-total")).to_contain_text("$25.00")
    expect(pay).to_be_enabled()
    page.fill("#amount", "0.50")
    expect(page.get_by_test_id("quote-error")).to_contain_text("The minimum top-up is $1.00.")
    expect(pay).to_be_disabled()


def test_times_in_the_browsers_time_zone(browser, live_server):
    make_user(email="zone-browser@example.com")
    context = browser.new_context(base_url=live_server.url, timezone_id="Asia/Shanghai")
    page = context.new_page()
    try:
        sign_in(page, "zone-browser@example.com")
        page.goto("/")  # the first page reports the zone; from then on times are shown in it
        page.reload()
        expect(page.locator("#activity thead")).to_contain_text("Asia/Shanghai")
        page.goto("/settings/")
        expect(page.get_by_test_id("current-zone")).to_contain_text("Asia/Shanghai")
    finally:
        context.close()

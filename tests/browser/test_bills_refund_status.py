"""The bills page in a real browser, desktop and phone: a partly refunded order says so, with the amount."""

import os

import pytest
from playwright.sync_api import expect

from synstar.money import usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.services.refunds import order_refund
from wallet.services.topups import order_complete, order_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1280, 390])
def test_partially_refunded_bill(page, width, settings):
    settings.SIGNUP_GRANT_USD = "0"
    topup_config_load()
    user = make_user(email="refunded@example.com")
    admin = make_user(email="ops@example.com", is_staff=True)
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")  # the sandbox takes it
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id="sbx_pi_1")
    order_refund(order_id=order.pk, source="admin", key="p", cash=usd("40"), actor=admin)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "refunded@example.com")
    page.goto("/bills/")
    row = page.locator(f'#bills tr[data-order="{order.order_no}"]')
    expect(row).to_contain_text("Partially refunded")
    expect(row).to_contain_text("refunded $40.00")
    # The page itself never scrolls sideways; a wide table scrolls inside its panel.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/bills-partial-{width}.png", full_page=True)

"""The wallet page in a real browser, desktop and phone: an account under payment review is told why it
cannot top up (no pay button), the invite panel still shows, and the page never scrolls sideways."""

import os

import pytest
from playwright.sync_api import expect

from synstar.accounts.services import user_status_set
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1280, 390])
def test_wallet_page_under_payment_review(page, width):
    topup_config_load()
    user = make_user(email="review@example.com")
    admin = make_user(email="ops2@example.com", is_staff=True)
    user_status_set(user=user, status="under_review", review_reason="payment", note="chargeback", actor=admin)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "review@example.com")
    page.goto("/wallet/")
    expect(page.get_by_test_id("account-status")).to_contain_text("under payment review")
    expect(page.get_by_test_id("topup-refused")).to_contain_text("Top-ups are paused")
    expect(page.get_by_test_id("checkout")).to_have_count(0)
    expect(page.locator("#invite")).to_contain_text("Invite rewards")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/wallet-review-{width}.png", full_page=True)

"""Top up in a real browser: $100 shows $103 credits; checkout; a signed webhook, processed by a real
Celery worker, completes the bill and adds $103 to the balance."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_top_up_100_through_checkout_and_webhook(page, celery_worker):
    topup_config_load()
    make_user(email="payer@example.com")
    sign_in(page, "payer@example.com")
    expect(page.get_by_test_id("balance")).to_have_text("$0.50")

    page.click("[data-nav=wallet]")
    page.get_by_role("button", name=re.compile(r"^\$20\.00")).click()
    expect(page.get_by_test_id("quote-total")).to_have_text("$20.00 credits")
    page.get_by_role("button", name=re.compile(r"^\$100\.00")).click()
    expect(page.get_by_test_id("quote-total")).to_have_text("$103.00 credits")
    page.fill("#amount", "0.5")
    expect(page.get_by_test_id("quote-error")).to_contain_text("minimum top-up is $1.00")
    page.fill("#amount", "100")
    expect(page.get_by_test_id("quote-total")).to_have_text("$103.00 credits")

    page.get_by_test_id("checkout").click()
    expect(page.locator("body")).to_contain_text("SANDBOX CHECKOUT")
    page.get_by_test_id("sandbox-pay").click()

    expect(page).to_have_url(re.compile(r"/bills/"))
    row = page.locator("#bills tbody tr").first
    for _ in range(40):  # the worker settles within seconds
        if "Completed" in row.inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("$103.00")
    page.click("[data-nav=dashboard]")
    expect(page.get_by_test_id("balance")).to_have_text("$103.50")

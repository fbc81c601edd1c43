"""The tokens page in a real browser, desktop and phone: the account-read choice is in the form and shown in
the list, and the page never scrolls sideways. A NUL in a console query answers our 400 page."""

import os

import pytest
from playwright.sync_api import expect

from billing.demo import catalog_load
from tests.browser.conftest import sign_in
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1280, 390])
def test_tokens_page_on_desktop_and_phone(page, width):
    catalog_load()
    make_user(email="layout@example.com")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "layout@example.com")
    page.goto("/tokens/")
    page.fill("input[name=name]", "script")
    page.check("input[name=can_read_account]")
    page.click("text=Create token")
    expect(page.locator("#new-key")).to_contain_text("sk-")
    expect(page.locator("body")).to_contain_text("account read")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/tokens-{width}.png", full_page=True)
    response = page.goto("/usage/?model=%00")
    assert response.status == 400
    expect(page.locator("body")).to_contain_text("not allowed")
    expect(page.get_by_role("link", name="Back to the console")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/400-{width}.png", full_page=True)

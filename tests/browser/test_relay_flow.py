"""The newcomer's path in a real browser against the ASGI app `make run` serves: create a token in the
console, call the relay with the official SDK, see the request on the usage page and the cost on the
dashboard."""

import os

import pytest
from playwright.sync_api import expect

from billing.demo import channels_load
from billing.models import Generation
from synstar.money import format_usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from tests.relay.conftest import relay_refresh, relay_server, settle_all  # noqa: F401 - relay_server is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def relay_page(browser, relay_server):  # noqa: F811 - the imported fixture
    channels_load()  # the quickstart's sandbox channel
    relay_refresh()
    context = browser.new_context(base_url=relay_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, relay_server
    context.close()


def test_token_from_console_calls_the_relay_and_the_cost_shows_up(relay_page):
    page, relay = relay_page
    make_user(email="newcomer@example.com", balance="5")
    sign_in(page, "newcomer@example.com")
    page.click("[data-nav=tokens]")
    page.fill("input[name=name]", "my first key")
    page.click("text=Create token")
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("sk-")

    answer = relay.client(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    assert answer.id.startswith("gen-")
    settle_all()
    generation = Generation.objects.get(public_id=answer.id)
    assert generation.state == "settled" and generation.final_cost > 0

    page.click("[data-nav=usage]")
    row = page.locator("tr", has_text=answer.id[:12])
    expect(row).to_contain_text("gpt-4o-mini")
    page.click("[data-nav=dashboard]")
    expect(page.get_by_test_id("requests")).to_have_text("1")
    expect(page.get_by_test_id("consumed")).to_contain_text(format_usd(generation.final_cost, places=2))
    if os.environ.get("SCREENSHOT_DIR"):
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], f"relay-dashboard-{width}.png"), full_page=True)

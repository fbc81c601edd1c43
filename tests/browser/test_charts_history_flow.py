"""The dashboard chart, the balance history and a request's detail page in a real browser, on a desktop
and a phone: the chart draws from the vendored Chart.js with a tooltip on hover and a spend/requests
toggle, the history links from recent activity and pages with exact balances, usage ids open the
detail page; no page scrolls sideways."""

import os
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.demo import catalog_load
from synstar.money import usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from tests.metering import meter_hold, meter_settle
from wallet.services.ledger import adjustment_create, main_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shot(page, name, width):
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)


def _user_with_history():
    catalog_load()
    real = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real() - timedelta(days=12)):
        user = make_user(email="charts@example.com", balance="40")
    staff = make_user(is_staff=True, email="ops@synstar.example")
    for days_ago in (9, 6, 4, 2, 1, 0):
        with mock.patch("django.utils.timezone.now", lambda d=days_ago: real() - timedelta(days=d)):
            for i in range(days_ago % 3 + 2):
                meter_settle(meter_hold(user, usd("0.20")), usd("0.03") * (i + 1))
    adjustment_create(user=user, amount=usd("2"), reason="ticket 7", user_reason="Sorry for the outage on Monday",
                      actor=staff, idempotency_key="browser-adj")
    return user


@pytest.mark.parametrize("width", [1280, 390])
def test_dashboard_chart_history_and_request_detail(page, width):
    user = _user_with_history()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "charts@example.com")
    page.goto("/")
    chart = page.locator("[data-testid=usage-chart] canvas")
    expect(chart).to_be_visible()
    page.wait_for_function("window.usageChart && window.usageChart.data.datasets.length > 0")
    assert page.evaluate("window.usageChart.data.datasets[0].label") == "ledger-test-units"
    assert page.evaluate("window.usageChart.data.labels.length") == 30
    # Hover today's bar: the tooltip lists the day's spend.
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    x = page.evaluate("window.usageChart.getDatasetMeta(0).data[29].x")
    y = page.evaluate("window.usageChart.getDatasetMeta(0).data[29].y")
    page.mouse.move(box["x"] + x, box["y"] + y + 2)
    page.wait_for_function("window.usageChart.tooltip.opacity > 0")
    lines = page.evaluate("window.usageChart.tooltip.body.map(b => b.lines.join(' '))")
    assert lines == [" ledger-test-units: $0.09"]  # 0.03 + 0.06 today
    assert page.evaluate("window.usageChart.tooltip.footer.join(' ')") == "Total: $0.09"
    _shot(page, "dashboard", width)
    page.click("[data-metric=requests]")
    assert page.evaluate("window.usageChart.data.datasets[0].data[29]") == 2
    # The chart fits the page (the recent-activity table's narrow layout is the responsive-tables work's).
    right = page.evaluate("document.querySelector('[data-testid=usage-chart]').getBoundingClientRect().right")
    assert right <= width

    page.click("[data-testid=history-link]")
    expect(page.locator("h1")).to_have_text("Balance history")
    first = page.locator("#history tbody tr").first
    balance = main_account(user=user).balance
    assert int(first.locator("td.balance").get_attribute("data-nanos")) == balance
    expect(page.locator("#history")).to_contain_text("Sorry for the outage on Monday")
    expect(page.locator("body")).not_to_contain_text("ops@synstar.example")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, "history", width)
    page.select_option("select[name=view]", "request")
    page.click("[data-testid=history-filters] button[type=submit]")
    expect(page.locator("#history tbody tr[data-kind=settlement]").first).to_be_visible()
    assert int(page.locator("#history tbody tr td.balance").first.get_attribute("data-nanos")) == balance
    _shot(page, "history-per-request", width)

    page.goto("/usage/")
    page.locator("[data-testid=generation-link]").first.click()
    expect(page.locator("[data-testid=generation-detail]")).to_contain_text("Settled")
    expect(page.locator("[data-testid=generation-id]")).to_contain_text("gen-")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, "generation", width)

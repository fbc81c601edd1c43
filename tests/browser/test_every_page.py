"""Every console page in a real browser, on a desktop (1280 px) and a phone (390 px): each one renders with
realistic data, never scrolls sideways, and leaves a screenshot in tests/artifacts/ for a person to look at.

A new page is one line in PAGES. Languages are a parameter too (LANGUAGES): a page is visited once per
language and width, so a second language is one more entry there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from billing.demo import catalog_load
from referrals.demo import reward_rule_load
from synstar.money import usd
from tests.factories import make_user
from tests.metering import meter_expire, meter_hold, meter_release, meter_settle
from wallet.demo import topup_config_load
from wallet.models import TopUpOrder
from wallet.services.topups import order_close, order_complete, order_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
WIDTHS = [1280, 390]
LANGUAGES = ["en", "zh-hans"]  # the language is chosen by the switch's cookie, as a visitor would


@dataclass(frozen=True)
class ConsolePage:
    name: str
    path: str  # may name ids of the seeded data: {token_id}, {checkout_id}, {order_no}, {generation_id}
    signed_in: bool = True
    status: int = 200


PAGES = [
    ConsolePage("dashboard", "/"),
    ConsolePage("history", "/history/"),
    ConsolePage("history-per-request", "/history/?view=request"),
    ConsolePage("wallet", "/wallet/"),
    ConsolePage("wallet-invalid-amount", "/wallet/?amount=12x"),
    ConsolePage("bills", "/bills/"),
    ConsolePage("bills-returned", "/bills/?paid={order_no}"),
    ConsolePage("usage", "/usage/"),
    ConsolePage("generation", "/usage/{generation_id}/"),
    ConsolePage("tokens", "/tokens/"),
    ConsolePage("token-edit", "/tokens/{token_id}/edit/"),
    ConsolePage("pricing", "/pricing/"),
    ConsolePage("invite", "/invite/"),
    ConsolePage("invoices", "/invoices/"),
    ConsolePage("refunds", "/refunds/"),
    ConsolePage("alerts", "/alerts/"),
    ConsolePage("settings", "/settings/"),
    ConsolePage("password-change", "/accounts/password/change/"),
    ConsolePage("email-addresses", "/accounts/email/"),
    ConsolePage("sandbox-checkout", "/sandbox/checkout/{checkout_id}/"),
    ConsolePage("not-found", "/no-such-page/", status=404),
    ConsolePage("bad-request", "/usage/?model=%00", status=400),
    ConsolePage("login", "/accounts/login/", signed_in=False),
    ConsolePage("signup", "/accounts/signup/", signed_in=False),
    ConsolePage("password-reset", "/accounts/password/reset/", signed_in=False),
    ConsolePage("password-reset-done", "/accounts/password/reset/done/", signed_in=False),
    ConsolePage("pricing-public", "/pricing/", signed_in=False),
]

EMAIL = "every.page.with.a.rather.long.address@example.com"


def seed() -> dict:
    """One account with something in every table: bills in each status, usage in each state, tokens,
    activity with long descriptions."""
    catalog_load()
    topup_config_load()
    reward_rule_load()
    user = make_user(email=EMAIL, balance="250")
    completed = order_create(user=user, amount=usd("1000"), method_code="stripe_card")
    order_complete(order_id=completed.pk, amount_cents=100000, currency="usd", payment_id="sbx_pi_every_page")
    failed = order_create(user=user, amount=usd("25"), method_code="stripe_card")
    order_close(order_id=failed.pk, status=TopUpOrder.Status.FAILED, reason="Your card was declined (insufficient funds).")
    pending = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    settled = meter_hold(user, usd("0.02"))
    meter_settle(settled, usd("0.013"))
    meter_release(meter_hold(user, usd("0.01")))
    meter_expire(meter_hold(user, usd("0.01")))
    meter_hold(user, usd("0.005"))  # still frozen
    token = user.api_tokens.order_by("id").first()
    return {
        "token_id": token.pk,
        "checkout_id": pending.checkout_id,
        "order_no": completed.order_no,
        "generation_id": settled.public_id,
        "user": user,
    }


def sign_in_by_cookie(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("console_page", PAGES, ids=lambda p: p.name)
def test_page_fits_the_screen(page, live_server, settings, console_page, width, lang):
    settings.SUPPORT_EMAIL = "support@example.com"
    data = seed()
    if console_page.signed_in:
        sign_in_by_cookie(page, live_server, data["user"])
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": lang, "url": live_server.url}])
    page.set_viewport_size({"width": width, "height": 900})
    response = page.goto(console_page.path.format(**data))
    assert response is not None and response.status == console_page.status
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.lang") == lang, f"{console_page.name} is not in {lang}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{console_page.name}-{lang}-{width}.png"), full_page=True)
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"{console_page.name} scrolls sideways at {width}px: {scroll_width} > {inner_width}"
    # Nor does any table scroll inside its panel: every column (the usage table's cost and status, each
    # pricing group) is on screen at 1280 px, and tables stack into labelled rows on a phone.
    wide_tables = page.evaluate(
        "[...document.querySelectorAll('table')].filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).map(t => t.id || 'table')"
    )
    assert wide_tables == [], f"{console_page.name} at {width}px: tables wider than their panel: {wide_tables}"

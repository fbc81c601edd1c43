"""The console in Simplified Chinese in a real browser, at 1280 and 390 px: chosen by the browser's
Accept-Language (Chromium's locale) and by the language switch in the sidebar. Every page is
screenshotted into tests/artifacts/ (zh-<page>-<width>.png) and none scrolls sideways."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from billing.demo import catalog_load
from billing.services.tokens import token_create
from referrals.demo import reward_rule_load
from synstar.accounts.models import User
from synstar.money import usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.services.topups import methods_for_user, order_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# Each console page and a phrase it must show in Chinese.
PAGES = [
    ("dashboard", "/", "当前余额"),
    ("wallet", "/wallet/", "使用兑换码"),
    ("bills", "/bills/", "订单号"),
    ("tokens", "/tokens/", "创建令牌"),
    ("usage", "/usage/", "用量记录"),
    ("invite", "/invite/", "您的邀请链接"),
    ("pricing", "/pricing/", "官方价格"),
    ("settings", "/settings/", "控制台和邮件语言"),
    ("history", "/history/", "余额明细"),
    ("invoices", "/invoices/", "发票"),
    ("refunds", "/refunds/", "退款"),
    ("alerts", "/alerts/", "提醒与通知"),
]


def _account(email: str) -> User:
    catalog_load()
    topup_config_load()
    reward_rule_load()
    user = make_user(email=email, country="CN", balance="123.45")
    token_create(user=user, name="生产环境")
    method = methods_for_user(user=user)[0][0]
    order_create(user=user, amount=usd("100"), method_code=method.code, base_url="http://testserver")
    return user


def _no_sideways_scroll(page, width: int, what: str) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{what} scrolls sideways at {width} px ({scroll} px wide)"


@pytest.mark.parametrize("width", [1280, 390])
def test_console_in_chinese_from_accept_language(browser, live_server, settings, width):
    settings.CNY_PER_USD = "7.2"
    ARTIFACTS.mkdir(exist_ok=True)
    _account("zh-browser@example.com")
    context = browser.new_context(base_url=live_server.url, locale="zh-CN", viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto("/accounts/login/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.locator("body")).to_contain_text("忘记密码？")
        page.screenshot(path=str(ARTIFACTS / f"zh-login-{width}.png"), full_page=True)
        _no_sideways_scroll(page, width, "the sign-in page")
        sign_in(page, "zh-browser@example.com")
        for name, path, phrase in PAGES:
            page.goto(path)
            expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
            expect(page.locator("main")).to_contain_text(phrase)
            expect(page.get_by_test_id("language-switch")).to_be_visible()
            if name == "wallet":
                expect(page.get_by_test_id("quote-cny")).to_contain_text("¥720.00")
            page.screenshot(path=str(ARTIFACTS / f"zh-{name}-{width}.png"), full_page=True)
            _no_sideways_scroll(page, width, name)
    finally:
        context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_switch_turns_the_console_chinese_and_remembers_it(browser, live_server, width):
    user = _account("zh-switch@example.com")
    context = browser.new_context(base_url=live_server.url, locale="en-US", viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, "zh-switch@example.com")
        page.goto("/wallet/")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("main")).to_contain_text("Redeem a code")
        page.get_by_test_id("language-switch").locator("select").select_option("zh-hans")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page).to_have_url(f"{live_server.url}/wallet/")
        expect(page.locator("main")).to_contain_text("使用兑换码")
        user.refresh_from_db()
        assert user.language == "zh-hans"
        page.goto("/usage/")
        expect(page.locator("main")).to_contain_text("用量记录")
        _no_sideways_scroll(page, width, "usage after the switch")
        page.screenshot(path=str(ARTIFACTS / f"zh-switch-usage-{width}.png"), full_page=True)
        # And back: English again, saved on the account.
        page.get_by_test_id("language-switch").locator("select").select_option("en")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        user.refresh_from_db()
        assert user.language == "en"
    finally:
        context.close()

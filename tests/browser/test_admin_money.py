"""An operator in a real browser: a bonus rule typed in dollars, a token's model and IP allow-lists through the
widgets (the two-box model filter is JavaScript), a code batch that ends on its confirmation page, which a
reload does not repeat. Screenshots at 1280 and 390 px go to tests/artifacts/ (or $SCREENSHOT_DIR)."""

import os
import pathlib

import pytest
from playwright.sync_api import expect

from billing.demo import catalog_load
from billing.models import ApiToken
from billing.services.tokens import token_create
from synstar.money import usd
from tests.browser.conftest import PASSWORD
from tests.factories import make_user
from wallet.models import BonusRule, CodeBatch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = pathlib.Path(os.environ.get("SCREENSHOT_DIR") or pathlib.Path(__file__).resolve().parent.parent / "artifacts")


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_operator_enters_dollars_and_lists_in_admin(page, width):
    catalog_load()
    make_user(email="ops@example.com", is_staff=True)
    token, _ = token_create(user=make_user(email="dev@example.com"), name="ci")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/admin/login/")
    page.fill("input[name=username]", "ops@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")

    page.goto("/admin/wallet/bonusrule/add/")
    page.select_option("select[name=match]", "above")
    page.fill("input[name=amount]", "200")
    page.fill("input[name=bonus_fixed]", "7.50")
    _shot(page, f"admin-bonusrule-add-{width}.png")
    page.click("input[name=_save]")
    expect(page.locator("#result_list")).to_contain_text("$200.00")
    assert BonusRule.objects.filter(amount=usd("200"), bonus_fixed=usd("7.5")).exists()

    page.goto(f"/admin/billing/apitoken/{token.pk}/change/")
    page.fill("input[name=quota]", "abc")
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("decimal number")
    page.fill("input[name=quota]", "25.50")
    page.select_option("#id_allowed_models_from", ["gpt-4o-mini"])
    page.click("#id_allowed_models_add")
    page.fill("textarea[name=allowed_ips]", "203.0.113.7\n10.0.0.0/24")
    _shot(page, f"admin-token-change-{width}.png")
    page.click("input[name=_save]")
    expect(page.locator("#result_list")).to_contain_text("$25.50")
    token.refresh_from_db()
    assert (token.quota, token.allowed_models, token.allowed_ips) == (
        usd("25.5"), ["gpt-4o-mini"], ["10.0.0.0/24", "203.0.113.7/32"])

    page.goto("/admin/wallet/codebatch/add/")
    page.fill("input[name=campaign]", "spring")
    page.fill("input[name=value]", "5")
    page.fill("input[name=count]", "3")
    page.select_option("#id_allowed_countries_from", ["CN", "HK"])
    page.click("#id_allowed_countries_add")
    _shot(page, f"admin-codebatch-add-{width}.png")
    page.click("input[name=_save]")
    expect(page.locator("[data-testid=batch-generated]")).to_contain_text("3 codes generated")
    expect(page.locator("[data-testid=batch-generated]")).to_contain_text("CN, HK")
    _shot(page, f"admin-codebatch-generated-{width}.png")
    with page.expect_download() as info:
        page.click("[data-testid=download]")
    assert info.value.suggested_filename.startswith("codes-batch-")
    page.reload()  # a refresh of the confirmation page generates nothing
    expect(page.locator("[data-testid=batch-generated]")).to_contain_text("have been downloaded")
    page.go_back()
    assert CodeBatch.objects.count() == 1 and ApiToken.objects.count() == 1

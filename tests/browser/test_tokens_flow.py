"""API tokens in a real browser: create, copy the key shown once, disable and delete with htmx."""

import pytest
from playwright.sync_api import expect

from billing.demo import catalog_load
from billing.models import ApiToken
from tests.browser.conftest import sign_in
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_disable_and_delete_a_token(page):
    catalog_load()
    user = make_user(email="tok@example.com")
    sign_in(page, "tok@example.com")
    page.click("[data-nav=tokens]")
    expect(page.locator("body")).to_contain_text("No API tokens yet")

    page.fill("input[name=name]", "browser-key")
    page.uncheck("input[name=unlimited]")
    page.fill("input[name=quota]", "3.25")
    page.click("text=Create token")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("sk-")
    token = ApiToken.objects.get(user=user)
    assert token.key_prefix == key[:10] and token.quota == 3_250_000_000
    row = page.locator(f"#token-{token.pk}")
    expect(row).to_contain_text("$3.25")

    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("Disabled")
    assert not ApiToken.objects.get(pk=token.pk).is_enabled

    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(f"#token-{token.pk}")).to_have_count(0)
    assert ApiToken.objects.get(pk=token.pk).deleted_at is not None
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)

"""Invite rewards in a real browser: a friend signs up through the invite link and tops up; the
inviter sees the proceeds and transfers them to the balance."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from referrals.demo import reward_rule_load
from referrals.services import invite_code_for
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_invitee_tops_up_and_inviter_transfers_proceeds(browser, live_server, celery_worker):
    topup_config_load()
    reward_rule_load()
    inviter = make_user(email="host@example.com")
    link = f"{live_server.url}/r/{invite_code_for(user=inviter).code}/"

    contexts = [browser.new_context(base_url=live_server.url) for _ in range(2)]
    try:
        _flow(contexts[0].new_page(), contexts[1].new_page(), link)
    finally:
        for context in contexts:
            context.close()


def _flow(friend, host, link):
    friend.goto(link)
    expect(friend.locator("body")).to_contain_text("You were invited")
    friend.fill("input[name=email]", "friend@example.com")
    friend.fill("input[name=password1]", "a long passphrase 42")
    friend.fill("input[name=password2]", "a long passphrase 42")
    friend.select_option("select[name=country]", "US")
    friend.click("button[type=submit]")
    confirm = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    friend.goto(confirm)
    friend.click("button[type=submit]")
    friend.click("[data-nav=wallet]")
    friend.fill("#amount", "50")
    expect(friend.get_by_test_id("quote-total")).to_have_text("$50.00 credits")
    friend.get_by_test_id("checkout").click()
    friend.get_by_test_id("sandbox-pay").click()
    expect(friend).to_have_url(re.compile(r"/bills/"))

    sign_in(host, "host@example.com")
    host.click("[data-nav=invite]")
    for _ in range(40):  # the worker completes the friend's top-up within seconds
        if host.get_by_test_id("proceeds").inner_text() != "$0.00":
            break
        host.wait_for_timeout(250)
        host.reload()
    expect(host.get_by_test_id("invited")).to_have_text("1")
    expect(host.get_by_test_id("proceeds")).to_have_text("$6.00")  # 10% of $50 + $1 first top-up
    expect(host.get_by_test_id("revenue")).to_have_text("$6.00")
    host.get_by_test_id("transfer").click()
    expect(host.locator(".alert")).to_contain_text("Proceeds moved to your balance")
    expect(host.get_by_test_id("proceeds")).to_have_text("$0.00")
    host.click("[data-nav=dashboard]")
    expect(host.get_by_test_id("balance")).to_have_text("$6.50")

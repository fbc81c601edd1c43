"""The bills page after a checkout, the wallet's amount field and the redeem form, as a signed-in user reads
them: the bill updates by polling until its final status, decline and cancel are said on return, each amount
error is one plain message under the field with the pay button disabled, and form messages sit by their form."""

import re
from urllib.parse import unquote

import pytest

from synstar.money import usd
from tests.factories import make_user
from wallet.models import TopUpOrder
from wallet.services.topups import order_close, order_complete, order_create

pytestmark = pytest.mark.django_db

POLLING = 'hx-trigger="every 2s"'


@pytest.fixture
def shopper(client, topup_config, settings):
    settings.SUPPORT_EMAIL = "help@synstar.example"
    user = make_user(email="shopper@example.com")
    client.force_login(user)
    return user


def banner(html: str) -> str:
    match = re.search(r'<div id="bill-return".*?</div>', html, re.S)
    assert match, "no answer to the checkout on the page"
    return match.group(0)


def test_return_from_checkout_polls_until_the_bill_is_final(client, shopper):
    order = order_create(user=shopper, amount=usd("100"), method_code="stripe_card")
    page = client.get(f"/bills/?paid={order.order_no}").content.decode()
    assert "Waiting for the payment provider to confirm order" in banner(page)
    assert POLLING in banner(page)
    row = re.search(rf'<tr id="bill-{order.order_no}"[^>]*>', page).group(0)
    assert POLLING in row  # the returned bill's row polls too

    TopUpOrder.objects.filter(pk=order.pk).update(status=TopUpOrder.Status.PAID)  # confirmed, credit not yet posted
    answer = client.get(f"/bills/{order.order_no}/status/?part=banner&how=paid&polls=1").content.decode()
    assert "Paid: the payment for order" in answer and POLLING in answer
    row = client.get(f"/bills/{order.order_no}/status/?part=row&polls=1").content.decode()
    assert "Paid" in row and "adding the credits" in row and POLLING in row

    TopUpOrder.objects.filter(pk=order.pk).update(status=TopUpOrder.Status.PENDING)
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id="pi_1")
    answer = client.get(f"/bills/{order.order_no}/status/?part=banner&how=paid&polls=2").content.decode()
    assert "Payment complete: $103.00 in credits" in answer
    assert "hx-trigger" not in answer  # final: the polling stops
    row = client.get(f"/bills/{order.order_no}/status/?part=row&polls=2").content.decode()
    assert "Completed" in row and "hx-trigger" not in row


def test_a_declined_payment_says_so_with_a_prefilled_support_link(client, shopper):
    order = order_create(user=shopper, amount=usd("25"), method_code="stripe_card")
    order_close(order_id=order.pk, status=TopUpOrder.Status.FAILED, reason="Your card was declined.")
    page = client.get(f"/bills/?cancelled={order.order_no}").content.decode()
    answer = banner(page)
    assert "was declined" in answer and "Your card was declined." in answer and "Nothing was charged" in answer
    assert "hx-trigger" not in answer
    mailto = re.search(r'href="(mailto:help@synstar.example[^"]+)"', answer).group(1)
    assert order.order_no in unquote(mailto) and "shopper@example.com" in unquote(mailto)
    assert "Request id: " in unquote(mailto)


def test_a_cancelled_checkout_says_so_on_return(client, shopper):
    order = order_create(user=shopper, amount=usd("25"), method_code="stripe_card")
    answer = banner(client.get(f"/bills/?cancelled={order.order_no}").content.decode())
    assert "You left the checkout before paying" in answer and "nothing was charged" in answer
    order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED)
    answer = client.get(f"/bills/{order.order_no}/status/?part=banner&how=cancelled").content.decode()
    assert "was cancelled. Nothing was charged." in answer and "hx-trigger" not in answer


def test_polling_stops_after_a_while_and_other_users_bills_are_not_found(client, shopper):
    order = order_create(user=shopper, amount=usd("25"), method_code="stripe_card")
    assert "hx-trigger" not in client.get(f"/bills/{order.order_no}/status/?part=row&polls=1000").content.decode()
    assert "hx-trigger" not in client.get(f"/bills/{order.order_no}/status/?part=row&polls=x").content.decode()
    other = make_user()
    client.force_login(other)
    assert client.get(f"/bills/{order.order_no}/status/?part=row").status_code == 404
    assert client.get(f"/bills/?paid={order.order_no}").status_code == 200  # no answer about someone else's order
    assert 'id="bill-return"' not in client.get(f"/bills/?paid={order.order_no}").content.decode()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12x", "Enter an amount such as 25.00."),
        ("", "Enter an amount such as 25.00."),
        ("-5", "Enter an amount such as 25.00."),
        ("0.5", "The minimum top-up is $1.00."),
        ("10.001", "Enter whole cents, such as 25.50."),
        ("20000", "The most you can top up here is $10,000.00."),
    ],
)
def test_one_plain_amount_error_under_the_field_and_pay_disabled(client, shopper, amount, message):
    page = client.get("/wallet/", {"amount": amount}).content.decode()
    assert page.count(message) == 1
    field_at, error_at = page.index('id="amount"'), page.index('data-testid="quote-error"')
    assert field_at < error_at < page.index('data-testid="checkout"')  # under the field, before the button
    assert re.search(r'<button type="submit" data-testid="checkout" disabled>', page)
    if amount == "20000":
        assert 'href="mailto:help@synstar.example' in page[error_at:]


def test_valid_amounts_enable_pay_and_accept_dollar_signs_and_commas(client, shopper):
    page = client.get("/wallet/", {"amount": "$1,000"}).content.decode()
    assert "data-testid=\"quote-error\"" not in page and "$1,100.00 credits" in page
    assert '<button type="submit" data-testid="checkout">' in page


def test_submitting_a_bad_amount_shows_the_field_error_not_a_banner(client, shopper):
    response = client.post("/wallet/topup/", {"amount": "abc", "method": "stripe_card"}, follow=True)
    page = response.content.decode()
    assert page.count("Enter an amount such as 25.00.") == 1
    assert "Enter an amount" not in page.split('<section class="panel">')[0]  # not at the page top
    assert not TopUpOrder.objects.exists()


def test_redeem_messages_appear_by_the_redeem_form(client, shopper):
    response = client.post("/wallet/redeem/", {"code": "NOPE-NOPE-NOPE-NOPE"})
    assert response["Location"] == "/wallet/#redeem"
    page = client.get("/wallet/").content.decode()
    redeem = page[page.index('id="redeem"') : page.index('id="invite"')]
    assert 'data-testid="redeem-message"' in redeem
    message = re.search(r'data-testid="redeem-message">([^<]+)<', redeem).group(1)
    assert page.count(message) == 1  # by the form only, not also at the page top

import pytest

from synstar.errors import InvalidRequest, PermissionDenied
from synstar.money import InvalidAmount, usd
from tests.factories import make_user
from wallet.models import TopUpOrder
from wallet.selectors.ledger import wallet_statistics
from wallet.services.topups import bonus_for, methods_for_user, order_complete, order_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("amount", "bonus"),
    [
        ("1", "0"),
        ("5", "0"),
        ("99.99", "0"),
        ("100", "3"),
        ("100.01", "0"),
        ("200", "0"),
        ("499.99", "0"),
        ("500", "20"),
        ("500.01", "0"),
        ("999.99", "0"),
        ("1000", "100"),
        ("1000.01", "120.0012"),
        ("2000", "240"),
        ("10000", "1200"),
    ],
)
def test_bonus_table(topup_config, amount, bonus):
    assert bonus_for(usd(amount)) == usd(bonus)


def test_2000_gives_2240_credits(topup_config):
    assert usd("2000") + bonus_for(usd("2000")) == usd("2240")


def test_sandbox_stands_in_without_keys_and_is_off_with_keys(settings, topup_config):
    user = make_user(country="US")
    assert {(m.code, p) for m, p in methods_for_user(user=user)} == {("stripe_card", "sandbox"), ("airwallex_card", "sandbox")}
    settings.STRIPE_SECRET_KEY = "sk_live_something"
    assert {(m.code, p) for m, p in methods_for_user(user=user)} == {("stripe_card", "stripe")}
    settings.PAYMENTS_SANDBOX = False
    settings.STRIPE_SECRET_KEY = ""
    assert methods_for_user(user=user) == []


def test_methods_follow_the_users_country(fake_stripe):
    us, cn = make_user(country="US"), make_user(country="CN")
    assert [m.code for m, _ in methods_for_user(user=us)] == ["stripe_card"]
    assert [m.code for m, _ in methods_for_user(user=cn)] == ["stripe_card", "stripe_alipay", "stripe_wechat_pay"]
    with pytest.raises(InvalidRequest) as info:
        order_create(user=us, amount=usd("10"), method_code="stripe_alipay")
    assert info.value.code == "method_not_available"
    order = order_create(user=cn, amount=usd("10"), method_code="stripe_wechat_pay")
    session = fake_stripe.sessions[order.checkout_id]
    assert session["payment_method_types"] == ["wechat_pay"]


@pytest.mark.parametrize(
    ("amount", "code"),
    [("0.99", "amount_too_small"), ("10000.01", "amount_too_large"), ("10.005", "invalid_amount")],
)
def test_amount_limits(fake_stripe, amount, code):
    user = make_user()
    with pytest.raises(InvalidAmount) as info:
        order_create(user=user, amount=usd(amount), method_code="stripe_card")
    assert info.value.code == code
    assert not TopUpOrder.objects.exists() and fake_stripe.sessions == {}


def test_suspended_or_payment_review_accounts_cannot_top_up(fake_stripe):
    from synstar.accounts.services import user_status_set

    user = make_user()
    user_status_set(user=user, status="under_review", review_reason="payment", note="chargeback", actor=None)
    with pytest.raises(PermissionDenied):
        order_create(user=user, amount=usd("10"), method_code="stripe_card")


def test_stripe_order_creates_a_checkout_session_for_the_exact_amount(fake_stripe):
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card", base_url="http://testserver")
    session = fake_stripe.sessions[order.checkout_id]
    assert (session["amount_total"], session["currency"], session["client_reference_id"]) == (10000, "usd", order.order_no)
    assert order.checkout_url == session["url"] and order.status == "pending"
    assert (order.amount, order.bonus) == (usd("100"), usd("3"))


def test_completion_credits_base_and_bonus_once(fake_stripe):
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id="pi_1")
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id="pi_1")
    order.refresh_from_db()
    assert order.status == "completed" and order.payment_id == "pi_1"
    assert wallet_statistics(user=user).balance == usd("103.50")


def test_provider_down_fails_the_order_with_a_clear_error(settings, fake_stripe):
    from wallet.providers import ProviderError

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    user = make_user()
    with pytest.raises(ProviderError) as info:
        order_create(user=user, amount=usd("10"), method_code="stripe_card")
    assert info.value.status == 502
    order = TopUpOrder.objects.get()
    assert order.status == "failed" and order.failure_reason
    assert wallet_statistics(user=user).balance == usd("0.50")


def test_airwallex_order_uses_a_payment_intent_and_the_hosted_page(fake_airwallex):
    user = make_user()
    order = order_create(user=user, amount=usd("25.50"), method_code="airwallex_card")
    intent = fake_airwallex.intents[order.checkout_id]
    assert (intent["amount"], intent["currency"], intent["merchant_order_id"]) == (25.5, "USD", order.order_no)
    assert order.checkout_url == f"/checkout/airwallex/{order.order_no}/"  # our page opens Airwallex.js's hosted page


def test_topups_and_bills_api(client, fake_stripe):
    user = make_user()
    client.force_login(user)
    created = client.post("/api/v1/topups", {"amount": "1000.01", "method": "stripe_card"}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert (body["base_credits"], body["bonus_credits"], body["total_credits"], body["status"]) == (
        "1000.01", "120.0012", "1120.0112", "pending")
    assert body["checkout_url"].startswith("https://checkout.stripe.test/")
    bad = client.post("/api/v1/topups", {"amount": "0.5", "method": "stripe_card"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "amount_too_small"
    bad = client.post("/api/v1/topups", {"amount": 12.5, "method": "stripe_card"}, content_type="application/json")
    assert bad.status_code == 400
    bills = client.get("/api/v1/bills").json()
    assert [b["order_no"] for b in bills] == [body["order_no"]]
    assert client.get("/api/v1/bills?status=completed").json() == []
    assert client.get("/api/v1/bills?status=nope").status_code == 400


def test_wallet_quote_and_bills_pages(client, topup_config):
    user = make_user()
    client.force_login(user)
    page = client.get("/wallet/").content.decode()
    assert "SANDBOX MODE" in page and "$103.00 credits" in page  # the default amount is $100
    quote = client.get("/wallet/quote/?amount=2000").content.decode()
    assert "$2,240.00 credits" in quote and "<html" not in quote
    assert "contact support" in client.get("/wallet/quote/?amount=20000").content.decode()
    assert "No charge records" in client.get("/bills/").content.decode()


def test_sandbox_checkout_completes_through_the_signed_webhook_path(client, topup_config, django_capture_on_commit_callbacks):
    from wallet.models import WebhookEvent
    from wallet.services.webhooks import webhook_process

    user = make_user()
    client.force_login(user)
    response = client.post("/wallet/topup/", {"amount": "100", "method": "stripe_card"})
    order = TopUpOrder.objects.get()
    assert response["Location"] == f"/sandbox/checkout/{order.checkout_id}/" and order.provider == "sandbox"
    assert "SANDBOX CHECKOUT" in client.get(response["Location"]).content.decode()
    client.post(response["Location"], {"outcome": "pay"})
    event = WebhookEvent.objects.get(provider="sandbox")
    assert event.event_type == "payment.succeeded" and event.status == "received"
    webhook_process(event_pk=event.pk)  # what the Celery task does
    order.refresh_from_db()
    assert order.status == "completed"
    assert wallet_statistics(user=user).balance == usd("103.50")
    assert "Completed" in client.get("/bills/").content.decode()


def test_bills_page_paginates_by_keyset(client, topup_config):
    from wallet.models import PaymentMethod

    user = make_user()
    method = PaymentMethod.objects.get(code="stripe_card")
    TopUpOrder.objects.bulk_create([TopUpOrder(order_no=f"T{i}", user=user, method=method, provider="sandbox", amount=usd("5"))
                                    for i in range(60)])
    client.force_login(user)
    first = client.get("/bills/")
    assert len(first.context["orders"]) == 50 and first.context["next_before"]
    second = client.get(f"/bills/?before={first.context['next_before']}")
    assert len(second.context["orders"]) == 10 and second.context["next_before"] is None
    assert "T0" in second.content.decode() and "T59" in first.content.decode()

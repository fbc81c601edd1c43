"""The provider clients against stand-ins that check requests the way the real APIs do, and what a user
sees when a provider fails (our words; the provider's text only in the log and on the order)."""

import json
import logging
import re
import uuid

import httpx
import pytest

from synstar.money import usd
from tests.factories import make_user
from wallet.models import TopUpOrder
from wallet.providers import ProviderError, airwallex_client
from wallet.services.topups import order_complete, order_create

pytestmark = pytest.mark.django_db


def _json_posts(fake):
    return [r for r in fake.requests if r[0] == "POST" and r[2]]


# --- Airwallex requests ---------------------------------------------------------------------------


def test_airwallex_requests_are_json_with_a_pinned_version_and_uuid4_request_ids(fake_airwallex, settings):
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="airwallex_card", base_url="http://testserver")
    intent = fake_airwallex.pay(order.checkout_id)
    assert airwallex_client.checkout_lookup(order).state == "paid"
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd", payment_id=intent["id"])
    order.refresh_from_db()
    airwallex_client.refund_create(order, amount_cents=1000, idempotency_key="refund-a")
    airwallex_client.refund_create(order, amount_cents=2000, idempotency_key="refund-b")

    assert fake_airwallex.requests, "nothing reached the stand-in"
    for _method, path, _raw, headers in fake_airwallex.requests:
        assert headers["x-api-version"] == settings.AIRWALLEX_API_VERSION == "2024-06-30", path
        assert headers["content-type"] == "application/json", path
    writes = [json.loads(raw) for _, _, raw, _ in _json_posts(fake_airwallex)]
    assert len(writes) == 3  # the intent and two refunds
    ids = [w["request_id"] for w in writes]
    assert all(uuid.UUID(rid).version == 4 and str(uuid.UUID(rid)) == rid for rid in ids)
    assert len(set(ids)) == 3
    # The same operation retried sends the same request_id: Airwallex replays its first answer.
    again = airwallex_client.refund_create(order, amount_cents=1000, idempotency_key="refund-a")
    assert again == fake_airwallex.refunds[0]["id"] and len(fake_airwallex.refunds) == 2


def test_the_fake_airwallex_refuses_what_the_real_api_refuses(fake_airwallex):
    login = httpx.post(f"{fake_airwallex.url}/api/v1/authentication/login",
                       headers={"x-client-id": fake_airwallex.client_id, "x-api-key": fake_airwallex.api_key})
    assert login.status_code == 201 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", login.json()["expires_at"])
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    body = json.dumps({"request_id": str(uuid.uuid4()), "amount": "1.00", "currency": "USD", "merchant_order_id": "x"})
    no_type = httpx.post(f"{fake_airwallex.url}/api/v1/pa/payment_intents/create", headers=auth, content=body)
    assert no_type.status_code == 415
    fake_airwallex.expire_tokens()
    expired = httpx.post(f"{fake_airwallex.url}/api/v1/pa/payment_intents/create", content=body,
                         headers={**auth, "Content-Type": "application/json"})
    assert expired.status_code == 401 and expired.json()["code"] == "unauthorized"


def test_the_token_lives_as_long_as_its_expires_at_says(fake_airwallex):
    user = make_user()
    for _ in range(3):
        order_create(user=user, amount=usd("10"), method_code="airwallex_card")
    assert fake_airwallex.logins == 1  # a 30-minute token is reused

    fake_airwallex.token_ttl = 30  # a token about to expire is never cached
    airwallex_client.cache.delete(airwallex_client._token_key())
    for _ in range(3):
        order_create(user=user, amount=usd("10"), method_code="airwallex_card")
    assert fake_airwallex.logins == 1 + 3


def test_a_401_logs_in_again_once_and_retries(fake_airwallex):
    user = make_user()
    order_create(user=user, amount=usd("10"), method_code="airwallex_card")
    fake_airwallex.expire_tokens()  # revoked or expired before our cache says so
    order = order_create(user=user, amount=usd("20"), method_code="airwallex_card")
    assert order.status == "pending" and fake_airwallex.logins == 2
    creates = fake_airwallex.calls("POST", "/api/v1/pa/payment_intents/create")
    assert len(creates) == 3  # the first order, then the refused attempt and its retry with the same request_id
    assert json.loads(creates[1][2])["request_id"] == json.loads(creates[2][2])["request_id"]

    # A 401 that persists after a fresh login is an error, not a loop.
    fake_airwallex.failures["/api/v1/pa/payment_intents/create"] = (401, {"code": "unauthorized", "message": "Access denied"})
    with pytest.raises(ProviderError):
        order_create(user=user, amount=usd("30"), method_code="airwallex_card")
    assert fake_airwallex.logins == 3
    assert len(fake_airwallex.calls("POST", "/api/v1/pa/payment_intents/create")) == 5


# --- Airwallex hosted payment page ----------------------------------------------------------------


def test_the_hosted_payment_page_is_opened_with_airwallex_js(client, fake_airwallex):
    user = make_user()
    client.force_login(user)
    response = client.post("/wallet/topup/", {"amount": "25.50", "method": "airwallex_card"})
    order = TopUpOrder.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/checkout/airwallex/{order.order_no}/"
    page = client.get(response["Location"]).content.decode()
    assert airwallex_client.SDK_URL in page and "payments.redirectToCheckout(options)" in page
    assert "standalone/checkout" not in page
    options = json.loads(re.search(r'<script id="awx-options" type="application/json">(.*?)</script>', page).group(1))
    intent = fake_airwallex.intents[order.checkout_id]
    assert options == {
        "env": "demo", "mode": "payment", "intent_id": intent["id"], "client_secret": intent["client_secret"],
        "currency": "USD", "successUrl": f"http://testserver/bills/?paid={order.order_no}",
        "failUrl": f"http://testserver/bills/?cancelled={order.order_no}", "country_code": "US",
    }
    # Another user cannot open it; a closed order goes back to the bills.
    other = make_user()
    client.force_login(other)
    assert client.get(f"/checkout/airwallex/{order.order_no}/").status_code == 404
    client.force_login(user)
    TopUpOrder.objects.filter(pk=order.pk).update(status="cancelled")
    assert client.get(f"/checkout/airwallex/{order.order_no}/").status_code == 302


def test_production_sends_shoppers_back_only_to_https(fake_airwallex, settings):
    settings.AIRWALLEX_ENV = "prod"
    user = make_user()
    with pytest.raises(ProviderError) as info:
        order_create(user=user, amount=usd("10"), method_code="airwallex_card", base_url="http://console.example")
    assert "https" not in info.value.message  # the user reads our words
    failed = TopUpOrder.objects.get()
    assert failed.status == "failed" and "must be https" in failed.provider_error
    assert not fake_airwallex.intents  # nothing was created at Airwallex

    order = order_create(user=user, amount=usd("10"), method_code="airwallex_card", base_url="https://console.example")
    assert fake_airwallex.intents[order.checkout_id]["return_url"] == f"https://console.example/bills/?paid={order.order_no}"


# --- errors a user sees ---------------------------------------------------------------------------

RAW = {
    # Stripe's library turns a non-JSON answer into "Invalid response body from API: <body> (HTTP response code was 404)".
    "stripe": ("stripe_card", "/v1/checkout/sessions", (404, "<html>upstream 404: nginx backend-7 gone</html>"), "Stripe"),
    "airwallex": ("airwallex_card", "/api/v1/pa/payment_intents/create",
                  (500, {"code": "internal_error", "message": "backend-7 NullPointerException at PaService"}), "Airwallex"),
}


@pytest.fixture
def failing_provider(request, fake_stripe, fake_airwallex):
    method, prefix, failure, name = RAW[request.param]
    fake = fake_stripe if request.param == "stripe" else fake_airwallex
    fake.failures[prefix] = failure
    return method, name


@pytest.mark.parametrize("failing_provider", ["stripe", "airwallex"], indirect=True)
def test_a_provider_failure_reads_in_our_words_in_the_console(client, failing_provider, caplog):
    method, name = failing_provider
    user = make_user()
    client.force_login(user)
    with caplog.at_level(logging.WARNING):
        response = client.post("/wallet/topup/", {"amount": "10", "method": method}, follow=True)
    page = response.content.decode()
    assert f"We could not start the payment with {name}. Nothing was charged" in page
    assert "backend-7" not in page and "Invalid response body" not in page
    order = TopUpOrder.objects.get()
    assert order.status == "failed" and "backend-7" in order.provider_error and "backend-7" not in order.failure_reason
    assert "backend-7" in caplog.text  # the detail is in the log
    bills = client.get("/bills/").content.decode()
    assert "backend-7" not in bills and "Invalid response body" not in bills


@pytest.mark.parametrize("failing_provider", ["stripe", "airwallex"], indirect=True)
def test_a_provider_failure_reads_in_our_words_in_the_api(client, failing_provider):
    method, name = failing_provider
    client.force_login(make_user())
    response = client.post("/api/v1/topups", {"amount": "10", "method": method}, content_type="application/json")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "payment_provider_error" and error["message"].startswith(f"We could not start the payment with {name}.")
    assert "backend-7" not in response.content.decode() and "Invalid response body" not in response.content.decode()
    assert "backend-7" in TopUpOrder.objects.get().provider_error

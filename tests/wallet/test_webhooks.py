"""Webhooks from stand-ins for Stripe and Airwallex, signed with the real schemes."""

import json
import random
import time

import pytest
from django.db import connection
from django.test import Client

from synstar.errors import NotFound
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from wallet.models import TopUpOrder, Transaction, WebhookEvent
from wallet.selectors.ledger import wallet_statistics
from wallet.services.topups import order_create
from wallet.services.webhooks import webhook_process


def deliver_stripe(fake, body, **headers):
    return Client().post("/webhooks/stripe/", body, content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=headers.get("signature") or fake.sign(body))


def deliver_airwallex(fake, body, headers=None):
    return Client().post("/webhooks/airwallex/", body, content_type="application/json", **(headers or fake.sign(body)))


def process_all_concurrently():
    """Workers racing over every stored event, each event handed to several of them."""
    pks = list(WebhookEvent.objects.values_list("pk", flat=True)) * 3
    random.shuffle(pks)

    def work(pk):
        try:
            return webhook_process(event_pk=pk)
        finally:
            connection.close()

    return run_concurrently(work, [(pk,) for pk in pks])


@pytest.mark.django_db(transaction=True)
def test_stripe_events_five_times_concurrently_and_out_of_order_credit_once(fake_stripe):
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    session = fake_stripe.pay(order.checkout_id)
    bodies = [
        fake_stripe.event("checkout.session.completed", session),
        fake_stripe.event("checkout.session.async_payment_succeeded", session),
        fake_stripe.event("checkout.session.expired", {**session, "status": "expired"}),
    ]
    deliveries = [b for b in bodies for _ in range(5)]
    random.shuffle(deliveries)
    results, errors = run_concurrently(lambda body: deliver_stripe(fake_stripe, body).status_code, [(b,) for b in deliveries])
    assert errors == [] and set(results) == {200}
    assert WebhookEvent.objects.count() == 3  # stored once each

    _, errors = process_all_concurrently()
    assert all("could not obtain lock" not in str(e) for e in errors)
    order.refresh_from_db()
    assert order.status == "completed"
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).balance == usd("103.50")
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.django_db(transaction=True)
def test_airwallex_events_five_times_concurrently_credit_once(fake_airwallex):
    user = make_user()
    order = order_create(user=user, amount=usd("500"), method_code="airwallex_card")
    intent = fake_airwallex.pay(order.checkout_id)
    bodies = [fake_airwallex.event("payment_intent.succeeded", intent),
              fake_airwallex.event("payment_intent.cancelled", {**intent, "status": "CANCELLED"})]
    deliveries = [b for b in bodies for _ in range(5)]
    random.shuffle(deliveries)
    results, errors = run_concurrently(lambda body: deliver_airwallex(fake_airwallex, body).status_code, [(b,) for b in deliveries])
    assert errors == [] and set(results) == {200}
    process_all_concurrently()
    order.refresh_from_db()
    # Whatever came first, the payment is credited once and a later "cancelled" cannot undo it.
    assert order.status == "completed"
    assert wallet_statistics(user=user).balance == usd("520.50")
    assert Transaction.objects.filter(kind="topup").count() == 1


@pytest.mark.django_db
def test_invalid_or_missing_stripe_signature_is_rejected_and_nothing_stored(fake_stripe):
    user = make_user()
    order = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    body = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.checkout_id))
    bad = deliver_stripe(fake_stripe, body, signature=fake_stripe.sign(body, secret="whsec_wrong"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_signature"
    tampered = body.replace(b'"amount_total": 1000', b'"amount_total": 100000')
    assert deliver_stripe(fake_stripe, tampered, signature=fake_stripe.sign(body)).status_code == 400
    missing = Client().post("/webhooks/stripe/", body, content_type="application/json")
    assert missing.status_code == 400
    stale = deliver_stripe(fake_stripe, body, signature=fake_stripe.sign(body, timestamp=int(time.time()) - 3600))
    assert stale.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert wallet_statistics(user=user).balance == usd("0.50")


@pytest.mark.django_db
def test_invalid_or_stale_airwallex_signature_is_rejected(fake_airwallex):
    order = order_create(user=make_user(), amount=usd("10"), method_code="airwallex_card")
    body = fake_airwallex.event("payment_intent.succeeded", fake_airwallex.pay(order.checkout_id))
    assert deliver_airwallex(fake_airwallex, body, fake_airwallex.sign(body, secret="nope")).status_code == 400
    old = fake_airwallex.sign(body, timestamp_ms=int((time.time() - 600) * 1000))
    stale = deliver_airwallex(fake_airwallex, body, old)
    assert stale.status_code == 400 and "too old" in stale.json()["error"]["message"]
    assert deliver_airwallex(fake_airwallex, body, {"HTTP_X_TIMESTAMP": "1"}).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [({"amount_total": 999}, "not credited"), ({"currency": "eur"}, "not credited")],
)
def test_amount_or_currency_mismatch_is_not_credited(fake_stripe, change, message):
    user = make_user()
    order = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    body = fake_stripe.event("checkout.session.completed", {**fake_stripe.pay(order.checkout_id), **change})
    assert deliver_stripe(fake_stripe, body).status_code == 200
    event = WebhookEvent.objects.get()
    with pytest.raises(Exception, match=message):
        webhook_process(event_pk=event.pk)
    event.refresh_from_db()
    assert event.status == "failed" and "payment_mismatch" not in event.error and message in event.error
    assert TopUpOrder.objects.get().status == "pending"
    assert wallet_statistics(user=user).balance == usd("0.50")


@pytest.mark.django_db
def test_unknown_order_is_rejected_and_kept_for_inspection(fake_stripe):
    body = fake_stripe.event("checkout.session.completed", {
        "id": "cs_test_unknown", "object": "checkout.session", "status": "complete", "payment_status": "paid",
        "amount_total": 1000, "currency": "usd", "metadata": {"order_no": "SS000000NOPE"}, "payment_intent": "pi_x"})
    assert deliver_stripe(fake_stripe, body).status_code == 200
    event = WebhookEvent.objects.get()
    with pytest.raises(Exception, match="No order matches"):
        webhook_process(event_pk=event.pk)
    assert WebhookEvent.objects.get().status == "failed"
    assert not Transaction.objects.filter(kind="topup").exists()


@pytest.mark.django_db
def test_unhandled_event_types_are_stored_and_ignored(fake_stripe):
    body = fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert deliver_stripe(fake_stripe, body).status_code == 200
    assert webhook_process(event_pk=WebhookEvent.objects.get().pk).status == "ignored"


@pytest.mark.django_db
def test_failed_event_is_retried_by_a_redelivery_and_then_succeeds(fake_stripe, settings):
    """A handler failure leaves the event retryable: a later attempt (redelivery or the retry task) applies it."""
    user = make_user()
    order = order_create(user=user, amount=usd("20"), method_code="stripe_card")
    body = fake_stripe.event("checkout.session.completed", fake_stripe.pay(order.checkout_id))
    deliver_stripe(fake_stripe, body)
    event = WebhookEvent.objects.get()
    TopUpOrder.objects.filter(pk=order.pk).update(provider="airwallex")  # the handler will not find it
    with pytest.raises(NotFound):
        webhook_process(event_pk=event.pk)
    assert WebhookEvent.objects.get().status == "failed"
    TopUpOrder.objects.filter(pk=order.pk).update(provider="stripe")  # fixed by an operator
    assert deliver_stripe(fake_stripe, body).json()["duplicate"] is True
    assert webhook_process(event_pk=event.pk).status == "processed"
    assert wallet_statistics(user=user).balance == usd("20.50")


@pytest.mark.django_db
def test_async_payment_pending_then_succeeded_then_failed(fake_stripe):
    user = make_user(country="CN")
    order = order_create(user=user, amount=usd("50"), method_code="stripe_alipay")
    session = fake_stripe.sessions[order.checkout_id]
    pending = {**session, "status": "complete", "payment_status": "unpaid", "payment_intent": "pi_async"}
    for event_type, obj in [("checkout.session.completed", pending),
                            ("checkout.session.async_payment_succeeded", {**pending, "payment_status": "paid"}),
                            ("checkout.session.async_payment_failed", pending)]:
        deliver_stripe(fake_stripe, fake_stripe.event(event_type, obj))
        webhook_process(event_pk=WebhookEvent.objects.latest("id").pk)
        order.refresh_from_db()
        if event_type == "checkout.session.completed":
            assert order.status == "pending" and order.payment_id == "pi_async"
    assert order.status == "completed"
    assert wallet_statistics(user=user).balance == usd("50.50")


@pytest.mark.django_db
def test_failed_and_expired_checkouts(fake_stripe):
    user = make_user(country="CN")
    failed = order_create(user=user, amount=usd("10"), method_code="stripe_alipay")
    expired = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    deliver_stripe(fake_stripe, fake_stripe.event("checkout.session.async_payment_failed", fake_stripe.sessions[failed.checkout_id]))
    deliver_stripe(fake_stripe, fake_stripe.event("checkout.session.expired", fake_stripe.sessions[expired.checkout_id]))
    for event in WebhookEvent.objects.all():
        webhook_process(event_pk=event.pk)
    assert TopUpOrder.objects.get(pk=failed.pk).status == "failed"
    assert TopUpOrder.objects.get(pk=expired.pk).status == "cancelled"
    assert wallet_statistics(user=user).balance == usd("0.50")


@pytest.mark.django_db
def test_webhook_answer_does_not_echo_secrets(fake_stripe, caplog):
    body = fake_stripe.event("customer.created", {"id": "cus_1"})
    response = deliver_stripe(fake_stripe, body, signature=fake_stripe.sign(body, secret="whsec_wrong"))
    text = response.content.decode() + caplog.text
    assert fake_stripe.webhook_secret not in text and fake_stripe.api_key not in text
    assert json.loads(response.content)["error"]["type"] == "invalid_request_error"

"""Auto top-up with a saved card, against the stand-in for Stripe's HTTP API, with signed webhooks: saving
a card through Checkout in setup mode, the trigger after settlement, the off-session charge and its
idempotency key, declines, authentication, a process killed between the call and the commit, webhook races,
the daily cap and the one-in-flight rule under 50 concurrent settlements."""

import json
import threading
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.services.metering import generation_settle, generations_settle_batch, metering_report
from billing.services.metering.pricing import Usage
from synstar.celery import app
from synstar.errors import SynstarError
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.metering import _units, meter_hold, meter_ready, meter_settle
from wallet.models import AutoTopUp, TopUpOrder, Transaction, WebhookEvent
from wallet.selectors.ledger import wallet_statistics
from wallet.services.autotopup import (
    autotopup_charge,
    autotopup_update,
    autotopups_resume,
    card_fetch,
    card_setup_start,
)
from wallet.services.topups import orders_reconcile
from wallet.services.webhooks import webhook_process


@pytest.fixture
def eager_tasks():
    """Celery tasks run where they are queued (after the commit that queues them), as a worker would."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def deliver(fake, body):
    response = Client().post("/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=fake.sign(body))
    assert response.status_code == 200, response.content
    return response


def process_events():
    for pk in WebhookEvent.objects.exclude(status="processed").values_list("pk", flat=True):
        webhook_process(event_pk=pk)


def save_card(fake, user, **card) -> AutoTopUp:
    """The whole card-saving path: our setup Checkout Session, the user entering a card at Stripe, Stripe's
    signed checkout.session.completed, then the worker reading the card from the SetupIntent."""
    url = card_setup_start(user=user, base_url="http://testserver")
    session = fake.complete_setup(url.rsplit("/", 1)[1], **card)
    deliver(fake, fake.event("checkout.session.completed", session))
    process_events()
    return card_fetch(user_id=user.pk)


def enable(user, *, threshold="5", amount="100", cap="500"):
    return autotopup_update(user=user, enabled=True, threshold=usd(threshold), amount=usd(amount), daily_cap=usd(cap))


def spend(user, cost: str, *, hold: str | None = None):
    """A request that holds `hold` (default: the cost) and is settled at `cost` by the worker's batch."""
    generation = meter_hold(user, usd(hold or cost))
    meter_settle(generation, usd(cost))


def charges(fake) -> list[dict]:
    """Every off-session charge request Stripe received, with its Idempotency-Key."""
    return [{**{k: v[0] for k, v in parse_qs(raw).items()}, "key": headers.get("idempotency-key")}
            for _, _, raw, headers in fake.calls("POST", "/v1/payment_intents") if "/cancel" not in _]


def auto_orders(user):
    return TopUpOrder.objects.filter(user=user, source="auto").order_by("id")


# --- saving a card ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_card_saved_through_setup_checkout_and_the_signed_webhook_is_shown_by_brand_and_last4(fake_stripe, eager_tasks):
    user = make_user(email="carder@example.com")
    url = card_setup_start(user=user, base_url="http://testserver")
    assert url.startswith("https://checkout.stripe.test/")

    customer = next(iter(fake_stripe.customers.values()))
    assert customer["email"] == "carder@example.com" and customer["metadata"] == {"user_id": str(user.pk)}
    (session,) = [s for s in fake_stripe.sessions.values() if s["mode"] == "setup"]
    assert session["customer"] == customer["id"] and session["success_url"].endswith("/wallet/?card=saved#autotopup")

    # The user enters a card at Stripe; Stripe sends the signed event; the worker (eager here) handles it.
    completed = fake_stripe.complete_setup(session["id"], brand="mastercard", last4="4444", exp_month=3, exp_year=2031)
    deliver(fake_stripe, fake_stripe.event("checkout.session.completed", completed))

    setting = AutoTopUp.objects.get(user=user)
    assert (setting.card_brand, setting.card_last4, setting.card_exp_month, setting.card_exp_year) == ("mastercard", "4444", 3, 2031)
    assert setting.payment_method_id in fake_stripe.payment_methods and not setting.enabled
    assert WebhookEvent.objects.get().status == "processed"
    lookups = fake_stripe.calls("GET", f"/v1/setup_intents/{completed['setup_intent']}")
    assert lookups and "expand" in lookups[0][1]
    # A second setup reuses the customer (one per user) and replaces the card, detaching the old one at Stripe.
    old = setting.payment_method_id
    save_card(fake_stripe, user, last4="1881")
    assert len(fake_stripe.customers) == 1
    assert AutoTopUp.objects.get(user=user).card_last4 == "1881"
    assert fake_stripe.payment_methods[old]["customer"] is None


@pytest.mark.django_db
def test_a_setup_session_for_an_unknown_customer_fails_the_event_and_changes_nothing(fake_stripe):
    user = make_user()
    card_setup_start(user=user)
    session = next(s for s in fake_stripe.sessions.values() if s["mode"] == "setup")
    completed = {**fake_stripe.complete_setup(session["id"]), "customer": "cus_someone_else"}
    deliver(fake_stripe, fake_stripe.event("checkout.session.completed", completed))
    with pytest.raises(SynstarError):
        process_events()
    assert WebhookEvent.objects.get().status == "failed"
    assert not AutoTopUp.objects.get(user=user).has_card


@pytest.mark.django_db
def test_settings_are_validated_and_need_a_card_to_turn_on(fake_stripe):
    user = make_user()
    with pytest.raises(SynstarError) as no_card:
        enable(user)
    assert no_card.value.code == "no_saved_card"
    save_card(fake_stripe, user)
    for kwargs, code in [({"threshold": "0"}, "invalid_threshold"), ({"amount": "0.50"}, "amount_too_small"),
                         ({"amount": "100", "cap": "50"}, "daily_cap_too_small"), ({"cap": "501"}, "daily_cap_too_large"),
                         ({"amount": "10.001"}, "invalid_amount")]:
        with pytest.raises(SynstarError) as refused:
            enable(user, **kwargs)
        assert refused.value.code == code, kwargs
    assert not AutoTopUp.objects.get(user=user).enabled
    setting = enable(user, threshold="2", amount="20", cap="60")
    assert (setting.enabled, setting.threshold, setting.amount, setting.daily_cap) == (True, usd("2"), usd("20"), usd("60"))


# --- the charge ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_settlement_below_the_threshold_charges_the_saved_card_off_session_once_with_the_bonus(fake_stripe, eager_tasks):
    user = make_user(balance="10")  # $10.50 with the signup grant
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="100")
    spend(user, "4")  # available $6.50: above the threshold, nothing happens
    assert not auto_orders(user).exists() and charges(fake_stripe) == []

    spend(user, "2")  # available $4.50 < $5: the settlement starts one auto top-up
    (order,) = auto_orders(user)
    (charge,) = charges(fake_stripe)
    assert charge["off_session"] == "true" and charge["confirm"] == "true" and charge["amount"] == "10000"
    assert charge["customer"] == AutoTopUp.objects.get(user=user).stripe_customer_id
    assert charge["payment_method"] == AutoTopUp.objects.get(user=user).payment_method_id
    assert charge["key"] == f"autotopup-{order.order_no}" and charge["metadata[order_no]"] == order.order_no
    assert order.status == "completed" and order.payment_id.startswith("pi_") and order.bonus == usd("3")
    assert wallet_statistics(user=user).available == usd("107.50")  # 4.50 + 100 + 3 bonus

    # Stripe's webhook for the same PaymentIntent arrives afterwards: credited once, by the same path.
    intent = fake_stripe.payment_intents[order.payment_id]
    deliver(fake_stripe, fake_stripe.event("payment_intent.succeeded", intent))
    assert WebhookEvent.objects.filter(event_type="payment_intent.succeeded").get().status == "processed"
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).available == usd("107.50")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["single", "batch"])
def test_fifty_settlements_crossing_the_threshold_at_once_start_exactly_one_top_up(fake_stripe, eager_tasks, path):
    user = make_user(balance="20")  # $20.50
    save_card(fake_stripe, user)
    enable(user, threshold="15", amount="50")
    gateway, _ = meter_ready(user)
    generations = [meter_hold(user, usd("0.10")) for _ in range(50)]  # $5 held: available $15.50, above
    app.conf.task_always_eager = False  # the reports' settlement task waits in the broker; the threads settle
    for g in generations:  # each request cost more than it held: settlement takes available to $10.50
        metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(units=_units(usd("0.20"))))
    app.conf.task_always_eager = True

    def settle(generation_id):
        try:
            if path == "batch":  # the worker's batch task, one generation per batch (SKIP LOCKED splits them)
                return generations_settle_batch(limit=1)
            return generation_settle(generation_id=generation_id, fetch=False)
        finally:
            connection.close()

    _, errors = run_concurrently(settle, [(g.pk,) for g in generations])
    assert errors == []
    assert auto_orders(user).count() == 1
    assert len(charges(fake_stripe)) == 1 and len(fake_stripe.payment_intents) == 1
    assert auto_orders(user).get().status == "completed"
    assert wallet_statistics(user=user).available == usd("60.50")  # 20.50 - 10 + 50


# --- failures ------------------------------------------------------------------------------------------


def autotopup_mails(outbox):
    """The auto top-up emails (the balance falling below $5 also sends the low-balance alert)."""
    return [m for m in outbox if "Auto top-up" in m.subject]


@pytest.mark.django_db(transaction=True)
def test_a_declined_card_fails_the_order_turns_auto_top_up_off_and_emails_the_user(fake_stripe, eager_tasks, mailoutbox):
    user = make_user(email="declined@example.com", balance="6")
    setting = save_card(fake_stripe, user, last4="0341")
    fake_stripe.card_outcomes[setting.payment_method_id] = "card_declined"
    enable(user, threshold="5", amount="20")
    spend(user, "2")

    (order,) = auto_orders(user)
    assert order.status == "failed" and order.failure_reason == "Your card was declined."
    assert "insufficient" not in order.failure_reason  # the bank's words stay out of what the user reads
    assert order.provider_error == "Stripe: card_declined" and order.payment_id.startswith("pi_")
    setting.refresh_from_db()
    assert not setting.enabled and setting.disabled_reason == "Your card was declined."
    (mail,) = autotopup_mails(mailoutbox)
    assert mail.to == ["declined@example.com"] and "Auto top-up is off" in mail.subject
    assert "0341" in mail.body and order.order_no in mail.body and "Your card was declined." in mail.body
    assert wallet_statistics(user=user).available == usd("4.50")

    # Off means off: more spending starts nothing, and the late payment_failed webhook changes nothing twice.
    spend(user, "1")
    assert auto_orders(user).count() == 1 and len(charges(fake_stripe)) == 1
    intent = fake_stripe.payment_intents[order.payment_id]
    deliver(fake_stripe, fake_stripe.event("payment_intent.payment_failed", intent))
    assert len(autotopup_mails(mailoutbox)) == 1
    # Turning it on again (the balance is below the threshold) tries at once.
    fake_stripe.card_outcomes[setting.payment_method_id] = "succeeded"
    enable(user, threshold="5", amount="20")
    assert auto_orders(user).count() == 2 and auto_orders(user).last().status == "completed"


@pytest.mark.django_db(transaction=True)
def test_authentication_required_reported_by_the_payment_failed_webhook_turns_auto_top_up_off(fake_stripe, eager_tasks, mailoutbox):
    user = make_user(email="sca@example.com", balance="6")
    setting = save_card(fake_stripe, user)
    fake_stripe.card_outcomes[setting.payment_method_id] = "processing"  # Stripe answers before the bank does
    enable(user, threshold="5", amount="20")
    spend(user, "2")
    (order,) = auto_orders(user)
    assert order.status == "pending" and order.checkout_id.startswith("pi_")

    intent = fake_stripe.payment_intents[order.checkout_id]
    intent.update(status="requires_payment_method", last_payment_error={
        "code": "authentication_required", "decline_code": "authentication_required", "type": "card_error",
        "message": "Your card was declined. This transaction requires authentication.", "payment_method": {"id": setting.payment_method_id}})
    deliver(fake_stripe, fake_stripe.event("payment_intent.payment_failed", intent))
    order.refresh_from_db()
    assert order.status == "failed" and "confirm the payment" in order.failure_reason
    assert not AutoTopUp.objects.get(user=user).enabled
    (mail,) = autotopup_mails(mailoutbox)
    assert "confirm the payment" in mail.body
    assert wallet_statistics(user=user).available == usd("4.50")


@pytest.mark.django_db(transaction=True)
def test_authentication_required_answered_at_once_fails_the_order(fake_stripe, eager_tasks, mailoutbox):
    user = make_user(balance="6")
    setting = save_card(fake_stripe, user)
    fake_stripe.card_outcomes[setting.payment_method_id] = "authentication_required"
    enable(user, threshold="5", amount="20")
    spend(user, "2")
    (order,) = auto_orders(user)
    assert order.status == "failed" and order.provider_error == "Stripe: authentication_required"
    assert not AutoTopUp.objects.get(user=user).enabled and len(autotopup_mails(mailoutbox)) == 1


# --- a process killed between the call and the commit ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["webhook", "resume"])
def test_a_charge_whose_answer_was_lost_is_never_charged_twice_nor_lost(fake_stripe, eager_tasks, first):
    """Stripe charged the card, but the answer never reached us (the state a process killed between the call
    and the commit leaves): the order is Pending with no PaymentIntent recorded. Stripe's webhook completes it,
    and the resume task's repeated call with the same idempotency key gets the same PaymentIntent back."""
    user = make_user(balance="6")
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="100")
    fake_stripe.drop_charge_answers = 3  # the library's retries are lost too
    spend(user, "2")
    (order,) = auto_orders(user)
    assert order.status == "pending" and order.checkout_id == "" and "APIConnectionError" in order.provider_error
    (intent,) = fake_stripe.payment_intents.values()
    assert intent["status"] == "succeeded"  # charged at Stripe
    assert len({c["key"] for c in charges(fake_stripe)}) == 1  # every attempt with the one key

    spend(user, "1")  # still in flight: no second top-up
    assert auto_orders(user).count() == 1

    resume_now = order.created_at + timedelta(minutes=5)
    if first == "webhook":
        deliver(fake_stripe, fake_stripe.event("payment_intent.succeeded", intent))
        assert autotopups_resume(now=resume_now) == {"resumed": 0, "cancelled": 0}  # nothing left to resume
    else:
        assert autotopups_resume(now=resume_now) == {"resumed": 1, "cancelled": 0}
        deliver(fake_stripe, fake_stripe.event("payment_intent.succeeded", intent))
    order.refresh_from_db()
    assert order.status == "completed" and order.payment_id == intent["id"]
    assert len(fake_stripe.payment_intents) == 1  # one charge, whatever the order
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).available == usd("106.50")  # 3.50 + 100 + 3
    autotopup_charge(order_id=order.pk)  # a task run twice is harmless
    assert len(fake_stripe.payment_intents) == 1 and Transaction.objects.filter(kind="topup").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_unanswered_charge_past_the_key_lifetime_is_cancelled_and_frees_the_slot(fake_stripe, eager_tasks):
    user = make_user(balance="6")
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="20")
    fake_stripe.failures["/v1/payment_intents"] = (500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})
    spend(user, "2")
    (order,) = auto_orders(user)
    assert order.status == "pending" and not fake_stripe.payment_intents
    assert autotopups_resume(now=order.created_at + timedelta(days=1)) == {"resumed": 0, "cancelled": 1}
    order.refresh_from_db()
    assert order.status == "cancelled" and AutoTopUp.objects.get(user=user).enabled  # not the card's fault
    del fake_stripe.failures["/v1/payment_intents"]
    spend(user, "0.10")
    assert auto_orders(user).count() == 2 and auto_orders(user).last().status == "completed"


# --- webhook races ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_succeeded_webhook_twice_at_once_credits_once(fake_stripe, eager_tasks):
    user = make_user(balance="6")
    setting = save_card(fake_stripe, user)
    fake_stripe.card_outcomes[setting.payment_method_id] = "processing"
    enable(user, threshold="5", amount="100")
    spend(user, "2")
    (order,) = auto_orders(user)
    intent = fake_stripe.payment_intents[order.checkout_id]
    intent.update(status="succeeded", amount_received=intent["amount"])
    same = fake_stripe.event("payment_intent.succeeded", intent)
    resent = fake_stripe.event("payment_intent.succeeded", intent)  # another event id for the same payment
    results, errors = run_concurrently(lambda body: deliver(fake_stripe, body).status_code, [(same,), (same,), (resent,), (resent,)])
    assert errors == [] and results == [200] * 4
    order.refresh_from_db()
    assert order.status == "completed"
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).available == usd("107.50")


@pytest.mark.django_db(transaction=True)
def test_the_succeeded_webhook_processed_before_the_charge_answer_is_recorded(fake_stripe, eager_tasks):
    """Stripe's payment_intent.succeeded can be delivered and processed while our create call still waits
    for its answer: the order completes from the webhook; recording the answer afterwards changes nothing."""
    user = make_user(balance="6")
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="100")
    seen = []

    def webhook_first(intent):
        try:
            deliver(fake_stripe, fake_stripe.event("payment_intent.succeeded", intent))
            seen.append(TopUpOrder.objects.get(order_no=intent["metadata"]["order_no"]).status)
        finally:
            connection.close()

    fake_stripe.on_payment_intent = lambda intent: _in_thread(webhook_first, intent)
    spend(user, "2")
    assert seen == ["completed"]
    (order,) = auto_orders(user)
    assert order.status == "completed" and order.checkout_id == order.payment_id
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).available == usd("107.50")


def _in_thread(fn, *args):
    thread = threading.Thread(target=fn, args=args)
    thread.start()
    thread.join(30)


# --- the cap, reconciliation, removal ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_daily_cap_stops_further_top_ups_until_the_next_utc_day(fake_stripe, eager_tasks):
    user = make_user(balance="6")
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="20", cap="30")
    spend(user, "2")
    assert auto_orders(user).count() == 1  # $20 of $30 today
    spend(user, "10")
    spend(user, "10")  # below the threshold again, but another $20 would pass the cap
    assert auto_orders(user).count() == 1
    TopUpOrder.objects.filter(user=user, source="auto").update(created_at=auto_orders(user).get().created_at - timedelta(days=1))
    spend(user, "0.01")
    assert auto_orders(user).count() == 2


@pytest.mark.django_db(transaction=True)
def test_reconciliation_completes_an_auto_top_up_from_its_payment_intent(fake_stripe, eager_tasks):
    user = make_user(balance="6")
    setting = save_card(fake_stripe, user)
    fake_stripe.card_outcomes[setting.payment_method_id] = "processing"
    enable(user, threshold="5", amount="20")
    spend(user, "2")
    (order,) = auto_orders(user)
    fake_stripe.payment_intents[order.checkout_id].update(status="succeeded", amount_received=2000)
    assert orders_reconcile(older_than=timedelta(0))["completed"] == 1
    order.refresh_from_db()
    assert order.status == "completed" and wallet_statistics(user=user).available == usd("24.50")


@pytest.mark.django_db
def test_checkout_payment_intents_are_not_auto_top_ups(fake_stripe):
    """Checkout's own PaymentIntents also send payment_intent.* events; a declined card inside Checkout can
    still be retried there, so those events change nothing (their session's events complete the order)."""
    user = make_user()
    from wallet.services.topups import order_create

    order = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    intent = {"id": "pi_checkout", "object": "payment_intent", "amount": 1000, "currency": "usd", "status": "requires_payment_method",
              "metadata": {"order_no": order.order_no}, "last_payment_error": {"code": "card_declined"}}
    deliver(fake_stripe, fake_stripe.event("payment_intent.payment_failed", intent))
    process_events()
    assert WebhookEvent.objects.get().status == "ignored"
    order.refresh_from_db()
    assert order.status == "pending"


@pytest.mark.django_db
def test_api_reads_and_changes_the_settings_with_the_session_only(fake_stripe):
    user = make_user(balance="50")
    save_card(fake_stripe, user, brand="visa", last4="4242")
    client = Client()
    client.force_login(user)
    body = client.get("/api/v1/autotopup").json()
    assert (body["has_card"], body["card_brand"], body["card_last4"], body["card_exp_month"], body["card_exp_year"]) == (
        True, "visa", "4242", 12, 2034)
    assert body["enabled"] is False and body["daily_cap_max"] == "500.00"

    changed = client.patch("/api/v1/autotopup", json.dumps({"enabled": True, "threshold": "10", "amount": "25.50", "daily_cap": "100"}),
                           content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["enabled"] is True and changed.json()["amount"] == "25.50"
    bad = client.patch("/api/v1/autotopup", json.dumps({"enabled": True, "threshold": "ten", "amount": "25", "daily_cap": "100"}),
                       content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    too_big = client.patch("/api/v1/autotopup", json.dumps({"enabled": True, "threshold": "10", "amount": "25", "daily_cap": "9000"}),
                           content_type="application/json")
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "daily_cap_too_large"
    assert AutoTopUp.objects.get(user=user).amount == usd("25.50")

    setup = client.post("/api/v1/autotopup/card")
    assert setup.status_code == 201 and setup.json()["checkout_url"].startswith("https://checkout.stripe.test/")
    assert Client().get("/api/v1/autotopup").status_code in (401, 403)


# --- console and admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_wallet_page_panel_saves_the_rule_and_shows_bad_input_as_a_message(fake_stripe):
    user = make_user(balance="50")
    client = Client()
    client.force_login(user)
    page = client.get("/wallet/").content.decode()
    assert "Saved card and auto top-up" in page and 'data-testid="saved-card">None' in page

    started = client.post("/wallet/autotopup/card/")
    assert started.status_code == 302 and started["Location"].startswith("https://checkout.stripe.test/")
    assert "Card saved at Stripe" in client.get("/wallet/?card=saved").content.decode()  # back before the webhook
    save_card(fake_stripe, user, brand="visa", last4="4242")
    page = client.get("/wallet/").content.decode()
    assert "Visa •••• 4242" in page and "Expires 12/2034" in page

    bad = client.post("/wallet/autotopup/", {"enabled": "on", "threshold": "abc", "amount": "20", "daily_cap": "100"}, follow=True)
    assert bad.status_code == 200 and "Threshold" in bad.content.decode() and not AutoTopUp.objects.get(user=user).enabled
    ok = client.post("/wallet/autotopup/", {"enabled": "on", "threshold": "10", "amount": "20", "daily_cap": "100"}, follow=True)
    assert "Auto top-up settings saved." in ok.content.decode()
    setting = AutoTopUp.objects.get(user=user)
    assert setting.enabled and setting.threshold == usd("10") and setting.amount == usd("20")

    removed = client.post("/wallet/autotopup/card/remove/", follow=True)
    assert "The saved card was removed" in removed.content.decode()
    setting.refresh_from_db()
    assert not setting.enabled and not setting.has_card


@pytest.mark.django_db
def test_the_panel_says_so_when_stripe_is_not_configured(topup_config):
    client = Client()
    client.force_login(make_user())
    assert "Auto top-up is not available" in client.get("/wallet/").content.decode()
    refused = client.post("/api/v1/autotopup/card")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "autotopup_unavailable"


@pytest.mark.django_db(transaction=True)
def test_admin_lists_settings_and_attempts_and_turns_auto_top_up_off(fake_stripe, eager_tasks, admin_user):
    user = make_user(email="auto@example.com", balance="6")
    save_card(fake_stripe, user)
    enable(user, threshold="5", amount="20")
    spend(user, "2")
    (order,) = auto_orders(user)
    client = Client()
    client.force_login(admin_user)
    settings_page = client.get("/admin/wallet/autotopup/").content.decode()
    assert "auto@example.com" in settings_page and "$5" in settings_page
    attempts = client.get("/admin/wallet/autotopupattempt/").content.decode()
    assert order.order_no in attempts
    assert client.get(f"/admin/wallet/autotopupattempt/{order.pk}/change/").status_code == 200
    assert client.get(f"/admin/wallet/autotopup/{AutoTopUp.objects.get(user=user).pk}/change/").status_code == 200
    client.post("/admin/wallet/autotopup/", {"action": "autotopup_off_action", "_selected_action": [AutoTopUp.objects.get(user=user).pk]})
    setting = AutoTopUp.objects.get(user=user)
    assert not setting.enabled and setting.disabled_reason == "Turned off by support."


# --- property: whatever order the answer, the webhooks and the retries come in ---------------------------

STEPS = ["answer", "lost_call", "webhook", "webhook", "resume", "reconcile"]


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cents=st.integers(min_value=100, max_value=50_000), steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6))
def test_any_interleaving_of_answer_webhooks_and_retries_charges_once_and_credits_once(fake_stripe, cents, steps):
    """One auto top-up, then any sequence of: our call and its recorded answer, a call whose answer is lost
    (the process died), Stripe's succeeded webhook (maybe twice), the resume task, reconciliation. Finally
    the webhook and the resume task run: one PaymentIntent, one credit of amount + the bonus rules' bonus."""
    amount = cents * 10_000_000  # $1 to $500, the default daily cap
    user = make_user(balance="1")
    pm = f"pm_{user.pk}_{cents}"
    customer = f"cus_{user.pk}_{cents}"
    fake_stripe.payment_methods[pm] = {"id": pm, "object": "payment_method", "customer": customer, "card": {"brand": "visa", "last4": "4242"}}
    AutoTopUp.objects.create(user=user, enabled=True, threshold=usd("5"), amount=amount, daily_cap=amount,
                             stripe_customer_id=customer, payment_method_id=pm, card_brand="visa", card_last4="4242")
    from wallet.models import Account
    from wallet.providers import stripe_client
    from wallet.services.autotopup import autotopup_check, idempotency_key
    from wallet.services.topups import bonus_for

    (order_id,) = autotopup_check(account_ids=[Account.objects.get(user=user, kind="main").pk])
    order = TopUpOrder.objects.get(pk=order_id)
    later = order.created_at + timedelta(minutes=5)

    def intents():
        return [i for i in fake_stripe.payment_intents.values() if i["metadata"].get("order_no") == order.order_no]

    def webhook():
        for intent in intents():
            deliver(fake_stripe, fake_stripe.event("payment_intent.succeeded", intent))
            process_events()

    for step in steps:
        if step == "answer":
            autotopup_charge(order_id=order_id)
        elif step == "lost_call":  # the call reached Stripe; the process died before recording the answer
            stripe_client.offsession_charge(order, customer_id=customer, payment_method_id=pm, amount_cents=cents,
                                            idempotency_key=idempotency_key(order))
        elif step == "webhook":
            webhook()
        elif step == "resume":
            autotopups_resume(now=later)
        else:
            orders_reconcile(older_than=timedelta(0))
    webhook()
    autotopups_resume(now=later)

    order.refresh_from_db()
    assert order.status == "completed"
    assert len(intents()) == 1 and order.payment_id == intents()[0]["id"]
    postings = Transaction.objects.filter(idempotency_key=f"topup:{order.order_no}")
    assert postings.count() == 1
    assert order.bonus == bonus_for(amount)
    assert wallet_statistics(user=user).balance == usd("1.50") + amount + bonus_for(amount)


# --- a real worker killed between the call and the commit ----------------------------------------------


@pytest.fixture
def stripe_env(fake_stripe, monkeypatch):
    """The worker process reaches the same stand-in for Stripe (started before the worker reads its env)."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", fake_stripe.api_key)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", fake_stripe.webhook_secret)
    monkeypatch.setenv("STRIPE_API_BASE", fake_stripe.url)
    return fake_stripe


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_after_stripe_charged_and_before_the_commit_neither_charges_twice_nor_loses_the_credit(stripe_env, celery_worker):
    fake = stripe_env
    user = make_user(balance="6")
    save_card(fake, user)
    enable(user, threshold="5", amount="100")
    charged, release = threading.Event(), threading.Event()

    def hold_the_answer(intent):  # Stripe has charged the card; the worker waits for the answer...
        charged.set()
        release.wait(30)

    fake.on_payment_intent = hold_the_answer
    spend(user, "2")  # the settlement queues the charge; the real worker makes the call
    assert charged.wait(60), celery_worker.log_path.read_text()[-3000:]
    celery_worker.kill()  # ...and is killed before it can record it
    release.set()
    fake.on_payment_intent = None

    (order,) = auto_orders(user)
    assert order.status == "pending" and order.checkout_id == "" and order.payment_id == ""
    (intent,) = fake.payment_intents.values()
    assert intent["status"] == "succeeded" and wallet_statistics(user=user).available == usd("4.50")

    # The beat task asks again with the same key: Stripe returns the same PaymentIntent; no second charge.
    assert autotopups_resume(now=order.created_at + timedelta(minutes=5)) == {"resumed": 1, "cancelled": 0}
    order.refresh_from_db()
    assert order.status == "completed" and order.payment_id == intent["id"]
    assert len(fake.payment_intents) == 1 and {c["key"] for c in charges(fake)} == {f"autotopup-{order.order_no}"}
    # Stripe's webhook arrives too: credited once.
    body = fake.event("payment_intent.succeeded", intent)
    deliver(fake, body)
    process_events()
    assert Transaction.objects.filter(kind="topup").count() == 1
    assert wallet_statistics(user=user).available == usd("107.50")

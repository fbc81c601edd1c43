"""Refunds and disputes: every interleaving of admin refunds, their echoes, cumulative provider figures,
refund failures and disputes ends with the same balance (DESIGN.md section 7). Real PostgreSQL, real
threads, events signed with the providers' schemes and shaped as their APIs send them."""

import os
import signal
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.wallet.test_webhooks import deliver_airwallex, deliver_stripe
from wallet.models import Refund, TopUpOrder, WebhookEvent
from wallet.selectors.ledger import wallet_statistics
from wallet.services.refunds import NothingRefundable, order_refund, refunds_resume
from wallet.services.topups import order_complete, order_create
from wallet.services.webhooks import webhook_process

pytestmark = pytest.mark.django_db


def paid_stripe_order(fake, user, amount="100"):
    order = order_create(user=user, amount=usd(amount), method_code="stripe_card")
    session = fake.pay(order.checkout_id)
    order_complete(order_id=order.pk, amount_cents=session["amount_total"], currency="usd", payment_id=session["payment_intent"])
    order.refresh_from_db()
    return order


def paid_airwallex_order(fake, user, amount="100"):
    order = order_create(user=user, amount=usd(amount), method_code="airwallex_card")
    intent = fake.pay(order.checkout_id)
    order_complete(order_id=order.pk, amount_cents=int(intent["amount"] * 100), currency="usd", payment_id=intent["id"])
    order.refresh_from_db()
    return order


def stripe_event(fake, event_type, obj):
    """Deliver a signed Stripe event and return its stored row (not processed yet)."""
    body = fake.event(event_type, obj)
    assert deliver_stripe(fake, body).status_code == 200
    return WebhookEvent.objects.get(event_id=__import__("json").loads(body)["id"])


def airwallex_event(fake, name, obj):
    body = fake.event(name, obj)
    assert deliver_airwallex(fake, body).status_code == 200
    return WebhookEvent.objects.get(event_id=__import__("json").loads(body)["id"])


def process(*events):
    for event in events:
        webhook_process(event_pk=event.pk)


def balance(user):
    return wallet_statistics(user=user).balance


@pytest.fixture
def no_grant(settings):
    settings.SIGNUP_GRANT_USD = "0"


# --- cumulative figures ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("arrival", ["30 then 100", "100 then 30", "at once"])
def test_two_cumulative_refund_figures_refund_the_larger_one_in_any_order(fake_stripe, no_grant, arrival):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)  # $100 + $3 bonus
    pi = order.payment_id
    e30 = stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=3000))
    e100 = stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=10000))
    if arrival == "30 then 100":
        process(e30, e100)
    elif arrival == "100 then 30":
        process(e100, e30)
    else:
        def work(pk):
            try:
                webhook_process(event_pk=pk)
            finally:
                connection.close()

        _, errors = run_concurrently(work, [(e30.pk,), (e100.pk,)] * 3)
        assert errors == []
    order.refresh_from_db()
    assert (order.cash_refunded, order.refunded_amount, order.bonus_clawed) == (usd("100"), usd("100"), usd("3"))
    assert order.status == "refunded"
    assert balance(user) == 0
    call_command("check_ledger")


# --- admin refunds and their echoes ---------------------------------------------------------------


def _echo_in_flight(fake, provider_event):
    """While the refund request is in flight (before the provider answers), deliver and process the
    provider's report of it from another connection, as a second worker would."""
    seen = []

    def on_refund(refund):
        def deliver():
            try:
                event = provider_event(refund)
                webhook_process(event_pk=event.pk)
                seen.append(WebhookEvent.objects.get(pk=event.pk).status)
            finally:
                connection.close()

        t = threading.Thread(target=deliver)
        t.start()
        t.join(30)

    fake.on_refund = on_refund
    return seen


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("echo", ["charge.refunded", "charge.refund.updated"])
def test_stripe_echo_processed_while_the_admin_refund_is_in_flight_counts_once(fake_stripe, no_grant, admin_user, echo):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)

    def report(refund):
        if echo == "charge.refunded":
            obj = fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=refund["amount"])
        else:
            obj = fake_stripe.refund_objects[refund["id"]]
        return stripe_event(fake_stripe, echo, obj)

    seen = _echo_in_flight(fake_stripe, report)
    refund = order_refund(order_id=order.pk, source="admin", key="admin-50", cash=usd("50"), actor=admin_user)
    assert seen == ["processed"]
    assert refund.status == "succeeded" and refund.provider_refund_id.startswith("re_")
    assert Refund.objects.count() == 1
    assert balance(user) == usd("50")  # $103 - $50 - $3 bonus, not $100 removed
    order.refresh_from_db()
    assert (order.status, order.cash_refunded) == ("partially_refunded", usd("50"))
    # The reports arriving again, later, change nothing either.
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=5000)))
    assert balance(user) == usd("50") and Refund.objects.count() == 1
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True)
def test_airwallex_echo_while_the_admin_refund_is_in_flight_is_recognised_by_request_id(fake_airwallex, no_grant, admin_user):
    user = make_user()
    order = paid_airwallex_order(fake_airwallex, user)
    calls = []
    original = fake_airwallex.route

    def route(method, path, raw, headers):
        status, body = original(method, path, raw, headers)
        if path == "/api/v1/pa/refunds/create" and status < 300:
            def deliver():
                try:
                    event = airwallex_event(fake_airwallex, "refund.settled", {**body, "status": "SETTLED"})
                    webhook_process(event_pk=event.pk)
                    calls.append(WebhookEvent.objects.get(pk=event.pk).status)
                finally:
                    connection.close()

            t = threading.Thread(target=deliver)
            t.start()
            t.join(30)
        return status, body

    fake_airwallex.route = route
    refund = order_refund(order_id=order.pk, source="admin", key="awx-50", cash=usd("50"), actor=admin_user)
    assert calls == ["processed"]
    refund.refresh_from_db()
    assert refund.status == "succeeded" and Refund.objects.count() == 1
    assert balance(user) == usd("50")
    call_command("check_ledger")


@pytest.mark.django_db(transaction=True)
def test_admin_refund_form_submitted_twice_at_once(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    data = {"action": "refund_action", "_selected_action": [order.pk], "apply": "1", "amount": "30",
            "reason": "goodwill", "idempotency_key": "f" * 32}

    def submit(_):
        try:
            client = Client()
            client.force_login(admin_user)
            return client.post("/admin/wallet/topuporder/", data).status_code
        finally:
            connection.close()

    results, errors = run_concurrently(submit, [(i,) for i in range(4)])
    assert errors == [] and set(results) == {302}
    assert Refund.objects.count() == 1 and len(fake_stripe.refunds) == 1
    assert balance(user) == usd("70")
    call_command("check_ledger")


def test_nothing_left_to_refund_is_refused_with_no_provider_call_and_no_row(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    order_refund(order_id=order.pk, source="admin", key="all", actor=admin_user)
    order.refresh_from_db()
    assert order.status == "refunded"
    with pytest.raises(NothingRefundable):
        order_refund(order_id=order.pk, source="admin", key="again", actor=admin_user)
    assert Refund.objects.count() == 1 and len(fake_stripe.refunds) == 1


def test_a_refund_the_provider_refuses_gives_the_credits_back(fake_stripe, no_grant, admin_user):
    from wallet.providers import ProviderError

    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    fake_stripe.refuse_refunds = True
    with pytest.raises(ProviderError) as exc:
        order_refund(order_id=order.pk, source="admin", key="refused", cash=usd("40"), actor=admin_user)
    assert not exc.value.retryable
    refund = Refund.objects.get()
    assert refund.status == "failed" and refund.base_restored == usd("40") and refund.bonus_restored == usd("3")
    order.refresh_from_db()
    assert (order.status, order.cash_refunded, order.refund_watermark) == ("completed", 0, 0)
    assert balance(user) == usd("103")
    # A later dashboard refund is counted in full: the refused one never raised the watermark for good.
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=2000)))
    assert balance(user) == usd("80")


# --- a worker killed between the provider call and the commit -------------------------------------

KILL_SCRIPT = """
import os, signal, sys
import django
django.setup()
from wallet.services import refunds as orders
from wallet.providers import stripe_client
where = sys.argv[1]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "after-call":
    orders.refund_confirm = die  # the provider has answered; we die before recording it
else:
    stripe_client.refund_create = die  # the intent is committed; we die before asking the provider
from django.contrib.auth import get_user_model
orders.order_refund(order_id=int(sys.argv[2]), source="admin", key="killed", cash=int(sys.argv[3]),
                    actor=get_user_model().objects.get(pk=int(sys.argv[4])))
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["after-call", "before-call"])
def test_worker_killed_around_the_provider_call_loses_nothing_and_refunds_once(fake_stripe, no_grant, admin_user, where):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    db = django_settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
           "STRIPE_SECRET_KEY": fake_stripe.api_key, "STRIPE_API_BASE": fake_stripe.url,
           "STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret, "DJANGO_SETTINGS_MODULE": "synstar.settings"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, where, str(order.pk), str(usd("50")), str(admin_user.pk)],
                          env=env, cwd=django_settings.BASE_DIR, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    refund = Refund.objects.get()
    assert refund.status == "pending"
    assert balance(user) == usd("50")  # the credits left with the intent, before the provider was asked
    assert len(fake_stripe.refunds) == (1 if where == "after-call" else 0)
    if where == "after-call":  # the provider's report arrives: recognised as ours, counted once
        process(stripe_event(fake_stripe, "charge.refunded",
                             fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=5000)))
        assert balance(user) == usd("50")
    assert refunds_resume(older_than=__import__("datetime").timedelta(0)) == {"succeeded": 1, "failed": 0, "pending": 0, "stale": 0}
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.provider_refund_id.startswith("re_")
    assert len(fake_stripe.refunds) == 1  # the same idempotency key: Stripe made one refund
    assert balance(user) == usd("50") and Refund.objects.count() == 1
    call_command("check_ledger")


# --- refund failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["charge.refund.updated", "refund.failed", "refund.updated"])
def test_a_stripe_refund_that_fails_later_gives_the_credits_back_once(fake_stripe, no_grant, admin_user, event_type):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    refund = order_refund(order_id=order.pk, source="admin", key="r", cash=usd("40"), actor=admin_user)
    assert balance(user) == usd("60")
    failed = {**fake_stripe.refund_objects[refund.provider_refund_id], "status": "failed",
              "failure_reason": "expired_or_canceled_card"}
    process(stripe_event(fake_stripe, event_type, failed), stripe_event(fake_stripe, event_type, failed))
    refund.refresh_from_db()
    assert refund.status == "failed" and (refund.base_restored, refund.bonus_restored) == (usd("40"), usd("3"))
    assert balance(user) == usd("103")
    order.refresh_from_db()
    assert (order.status, order.cash_refunded, order.refunded_amount, order.bonus_clawed) == ("completed", 0, 0, 0)
    call_command("check_ledger")


@pytest.mark.parametrize("failure_first", [False, True])
def test_a_dashboard_refund_that_fails_is_restored_whatever_arrives_first(fake_stripe, no_grant, failure_first):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    pi = order.payment_id
    refunded = stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=3000))
    failed = stripe_event(fake_stripe, "charge.refund.updated", fake_stripe.refund_object(pi, amount=3000, status="failed",
                                                                                       refund_id="re_dash"))
    process(*([failed, refunded] if failure_first else [refunded, failed]))
    assert balance(user) == usd("103")  # the bonus clawed back with it comes back too: no money is out
    order.refresh_from_db()
    assert (order.status, order.cash_refunded, order.refunded_amount, order.bonus_clawed) == ("completed", 0, 0, 0)
    call_command("check_ledger")


def test_airwallex_refund_failed_gives_the_credits_back(fake_airwallex, no_grant, admin_user):
    user = make_user()
    order = paid_airwallex_order(fake_airwallex, user)
    refund = order_refund(order_id=order.pk, source="admin", key="r", cash=usd("40"), actor=admin_user)
    obj = {**fake_airwallex.refunds[0], "status": "FAILED"}
    process(airwallex_event(fake_airwallex, "refund.failed", obj), airwallex_event(fake_airwallex, "refund.failed", obj))
    refund.refresh_from_db()
    assert refund.status == "failed" and balance(user) == usd("103")
    call_command("check_ledger")


@pytest.mark.parametrize("names", [("refund.succeeded", "refund.settled"), ("refund.settled", "refund.succeeded"),
                                   ("refund.received", "refund.settled")])
def test_airwallex_dashboard_refund_counts_once_when_it_succeeds_or_settles(fake_airwallex, no_grant, names):
    user = make_user()
    order = paid_airwallex_order(fake_airwallex, user)
    obj = {"id": "rfd_dash", "request_id": "dashboard-1", "payment_intent_id": order.payment_id, "amount": 25.0,
           "currency": "USD", "status": "SETTLED", "metadata": {}}
    process(*[airwallex_event(fake_airwallex, name, obj) for name in names * 2])
    assert Refund.objects.filter(status="succeeded").count() == 1
    assert balance(user) == usd("75")  # $25 base + $3 bonus clawed back
    order.refresh_from_db()
    assert (order.status, order.cash_refunded) == ("partially_refunded", usd("25"))


def test_a_refund_in_another_currency_is_refused_like_a_payment_mismatch(fake_stripe, fake_airwallex, no_grant):
    user = make_user()
    stripe_order = paid_stripe_order(fake_stripe, user)
    awx_order = paid_airwallex_order(fake_airwallex, user)
    e1 = stripe_event(fake_stripe, "charge.refunded",
                      fake_stripe.charge(stripe_order.payment_id, amount=10000, amount_refunded=5000, currency="eur"))
    e2 = airwallex_event(fake_airwallex, "refund.settled", {"id": "rfd_x", "payment_intent_id": awx_order.payment_id,
                                                             "amount": 10.0, "currency": "HKD", "status": "SETTLED"})
    for event in (e1, e2):
        with pytest.raises(Exception, match="nothing changed"):
            webhook_process(event_pk=event.pk)
        event.refresh_from_db()
        assert event.status == "failed" and "PaymentMismatch" in event.error
    assert balance(user) == usd("206") and Refund.objects.count() == 0


# --- disputes ---------------------------------------------------------------------------------------


def test_stripe_dispute_inquiry_moves_nothing_then_withdrawn_reinstated_and_won_restore_once(fake_stripe, no_grant):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    pi = order.payment_id
    for status in ("warning_needs_response", "warning_under_review"):
        process(stripe_event(fake_stripe, "charge.dispute.created", fake_stripe.dispute(pi, amount=10000, status=status)))
    process(stripe_event(fake_stripe, "charge.dispute.closed", fake_stripe.dispute(pi, amount=10000, status="warning_closed")))
    assert balance(user) == usd("103") and Refund.objects.count() == 0

    process(stripe_event(fake_stripe, "charge.dispute.created", fake_stripe.dispute(pi, amount=4000, status="needs_response",
                                                                                   dispute_id="dp_2")))
    process(stripe_event(fake_stripe, "charge.dispute.funds_withdrawn", fake_stripe.dispute(pi, amount=4000, status="needs_response",
                                                                                           dispute_id="dp_2")))
    assert balance(user) == usd("60")  # $40 and the $3 bonus, once
    order.refresh_from_db()
    assert order.status == "partially_refunded"
    for event_type, status in (("charge.dispute.funds_reinstated", "under_review"), ("charge.dispute.closed", "won")):
        process(stripe_event(fake_stripe, event_type, fake_stripe.dispute(pi, amount=4000, status=status, dispute_id="dp_2")))
    assert balance(user) == usd("103")
    dispute = Refund.objects.get(key="stripe:dispute:dp_2")
    assert dispute.status == "reversed" and dispute.restore_transaction is not None
    order.refresh_from_db()
    assert (order.status, order.cash_refunded) == ("completed", 0)
    call_command("check_ledger")


def test_stripe_dispute_reinstated_before_withdrawn_arrives_nets_to_nothing(fake_stripe, no_grant):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    pi = order.payment_id
    process(stripe_event(fake_stripe, "charge.dispute.funds_reinstated", fake_stripe.dispute(pi, amount=10000, status="won")),
            stripe_event(fake_stripe, "charge.dispute.funds_withdrawn", fake_stripe.dispute(pi, amount=10000, status="needs_response")))
    assert balance(user) == usd("103")


@pytest.mark.parametrize("lost", ["payment_dispute.accepted", "payment_dispute.lost", "payment_dispute.expired"])
@pytest.mark.parametrize("won", ["payment_dispute.won", "payment_dispute.reversed"])
def test_airwallex_dispute_claws_back_when_money_leaves_and_restores_when_it_returns(fake_airwallex, no_grant, lost, won):
    user = make_user()
    order = paid_airwallex_order(fake_airwallex, user)
    dispute = {"id": "dsp_1", "payment_intent_id": order.payment_id, "merchant_order_id": order.order_no, "amount": 40.0,
               "currency": "USD", "status": "ACCEPTED", "payment_method_type": "card"}
    process(airwallex_event(fake_airwallex, "payment_dispute.requires_response", dispute))
    assert balance(user) == usd("103")
    process(airwallex_event(fake_airwallex, lost, dispute), airwallex_event(fake_airwallex, lost, dispute))
    assert balance(user) == usd("60")
    process(airwallex_event(fake_airwallex, won, dispute), airwallex_event(fake_airwallex, won, dispute))
    assert balance(user) == usd("103")
    call_command("check_ledger")


# --- the whole class: any set of refund figures, in any order -------------------------------------


@pytest.mark.django_db(transaction=True)
@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    admin=st.lists(st.integers(min_value=1, max_value=16), max_size=3),
    dashboard=st.lists(st.integers(min_value=1, max_value=16), max_size=3),
    data=st.data(),
)
def test_any_refunds_in_any_order_count_each_dollar_once(fake_stripe, admin_user, settings, admin, dashboard, data):
    """Admin refunds (with their cumulative echoes) and dashboard refunds, their cumulative figures
    delivered in any order and some twice: the order ends with exactly the sum refunded."""
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)  # $100 + $3
    kinds = data.draw(st.permutations(["a"] * len(admin) + ["d"] * len(dashboard)))
    admin_left, dash_left, total, events = list(admin), list(dashboard), 0, []
    for i, kind in enumerate(kinds):
        dollars = (admin_left if kind == "a" else dash_left).pop()
        if kind == "a":
            order_refund(order_id=order.pk, source="admin", key=f"a{i}", cash=usd(str(dollars)), actor=admin_user)
        total += dollars * 100
        events.append(fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=total))
    events += data.draw(st.lists(st.sampled_from(events), max_size=2)) if events else []
    for obj in data.draw(st.permutations(events)):
        process(stripe_event(fake_stripe, "charge.refunded", obj))
    order.refresh_from_db()
    assert order.cash_refunded == usd(str(sum(admin) + sum(dashboard)))
    assert balance(user) == usd("103") - order.cash_refunded - (usd("3") if order.cash_refunded else 0)
    assert order.status == ("completed" if not total else "refunded" if total >= 10000 else "partially_refunded")
    call_command("check_ledger")


# --- signatures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_stripe_webhook_refused_when_its_timestamp_is_far_in_the_past_or_future(fake_stripe, offset):
    import time

    body = fake_stripe.event("checkout.session.completed", {"id": "cs_x"})
    response = deliver_stripe(fake_stripe, body, signature=fake_stripe.sign(body, timestamp=int(time.time()) + offset))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert WebhookEvent.objects.count() == 0


def test_order_status_names(db):
    assert TopUpOrder.Status.PARTIALLY_REFUNDED.label == "Partially refunded"


def test_bills_page_shows_a_partial_refund_with_its_amount(client, fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    order_refund(order_id=order.pk, source="admin", key="part", cash=usd("25"), actor=admin_user)
    client.force_login(user)
    page = client.get("/bills/").content.decode()
    row = page[page.index(f'data-order="{order.order_no}"'):]
    row = row[:row.index("</tr>")]
    assert "Partially refunded" in row and "refunded $25.00" in row

"""Reconciliation: every open order is looked at within a bounded time, re-checked after a back-off,
and closed once the provider's checkout lifetime has passed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from wallet.models import TopUpOrder, Transaction
from wallet.selectors.ledger import wallet_statistics
from wallet.services.topups import order_create, orders_reconcile

pytestmark = pytest.mark.django_db


def _age(order, **delta):
    TopUpOrder.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(**delta))


def _lookups(fake_stripe):
    return len(fake_stripe.calls("GET", "/v1/checkout/sessions/"))


def test_200_abandoned_older_orders_do_not_starve_a_paid_one(fake_stripe):
    user = make_user()
    for i in range(200):
        abandoned = order_create(user=user, amount=usd("10"), method_code="stripe_card")
        _age(abandoned, hours=3, minutes=i)  # all older than the paid order below
    paid = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    _age(paid, minutes=30)
    fake_stripe.pay(paid.checkout_id)  # paid at Stripe; its webhook was lost

    counts = orders_reconcile()  # the beat task's call: default age and batch of 200
    assert counts["completed"] == 1 and counts["open"] == 199
    assert TopUpOrder.objects.get(pk=paid.pk).status == "completed"
    assert wallet_statistics(user=user).balance == usd("103.50")

    # The one order left out of the first batch is taken by the next run; the others are not due yet.
    before = _lookups(fake_stripe)
    assert orders_reconcile() == {"completed": 0, "cancelled": 0, "failed": 0, "open": 1, "errors": 0}
    assert _lookups(fake_stripe) - before == 1
    assert not TopUpOrder.objects.filter(status="pending", last_checked_at__isnull=True).exists()


def test_an_open_order_is_checked_again_after_its_back_off(fake_stripe, settings):
    settings.ORDER_RECONCILE_BACKOFF_SECONDS, settings.ORDER_RECONCILE_BACKOFF_MAX_SECONDS = 120, 3600
    order = order_create(user=make_user(), amount=usd("10"), method_code="stripe_card")
    _age(order, minutes=20)

    assert orders_reconcile()["open"] == 1
    order.refresh_from_db()
    assert order.reconcile_checks == 1 and order.last_checked_at is not None
    assert abs((order.next_check_at - order.last_checked_at) - timedelta(seconds=120)) < timedelta(seconds=1)

    assert orders_reconcile()["open"] == 0  # within its back-off: not asked again
    assert _lookups(fake_stripe) == 1

    TopUpOrder.objects.filter(pk=order.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))  # 120 s later
    fake_stripe.pay(order.checkout_id)
    assert orders_reconcile()["completed"] == 1
    order.refresh_from_db()
    assert order.status == "completed" and order.reconcile_checks == 2 and _lookups(fake_stripe) == 2


def test_the_back_off_doubles_up_to_its_maximum(fake_stripe, settings):
    settings.ORDER_RECONCILE_BACKOFF_SECONDS, settings.ORDER_RECONCILE_BACKOFF_MAX_SECONDS = 120, 3600
    order = order_create(user=make_user(), amount=usd("10"), method_code="stripe_card")
    _age(order, minutes=20)
    waits = []
    for _ in range(7):
        TopUpOrder.objects.filter(pk=order.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
        orders_reconcile()
        order.refresh_from_db()
        waits.append(round((order.next_check_at - order.last_checked_at).total_seconds()))
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600]


def test_orders_past_the_checkout_lifetime_are_closed_at_the_provider_and_cancelled(fake_stripe, fake_airwallex):
    user = make_user()
    stripe_old = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    awx_old = order_create(user=user, amount=usd("20"), method_code="airwallex_card")
    awx_paid_late = order_create(user=user, amount=usd("30"), method_code="airwallex_card")
    recent = order_create(user=user, amount=usd("40"), method_code="stripe_card")
    for order in (stripe_old, awx_old, awx_paid_late):
        _age(order, hours=25)
    _age(recent, hours=23)
    fake_airwallex.pay(awx_paid_late.checkout_id)

    counts = orders_reconcile()
    assert counts == {"completed": 1, "cancelled": 2, "failed": 0, "open": 1, "errors": 0}
    for order in (stripe_old, awx_old):
        order.refresh_from_db()
        assert order.status == "cancelled" and order.failure_reason == "Not paid within 24 hours; the checkout was closed."
    assert fake_stripe.sessions[stripe_old.checkout_id]["status"] == "expired"  # can no longer be paid
    assert fake_airwallex.intents[awx_old.checkout_id]["status"] == "CANCELLED"
    assert TopUpOrder.objects.get(pk=awx_paid_late.pk).status == "completed"
    assert TopUpOrder.objects.get(pk=recent.pk).status == "pending"


def test_a_checkout_the_provider_will_not_close_stays_open(fake_airwallex):
    order = order_create(user=make_user(), amount=usd("20"), method_code="airwallex_card")
    _age(order, hours=25)
    fake_airwallex.failures[f"/api/v1/pa/payment_intents/{order.checkout_id}/cancel"] = (
        400, {"code": "invalid_status_for_operation", "message": "paid a moment ago"})
    assert orders_reconcile()["errors"] == 1
    order.refresh_from_db()
    assert order.status == "pending" and order.next_check_at > timezone.now()  # checked again after its back-off


def test_an_order_without_a_checkout_is_cancelled(fake_stripe):
    order = order_create(user=make_user(), amount=usd("10"), method_code="stripe_card")
    TopUpOrder.objects.filter(pk=order.pk).update(checkout_id="", checkout_url="")  # the process died before saving it
    _age(order, minutes=20)
    assert orders_reconcile()["cancelled"] == 1
    assert TopUpOrder.objects.get(pk=order.pk).status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_runs_at_the_same_time_split_the_orders(fake_stripe):
    user = make_user()
    orders = [order_create(user=user, amount=usd("10"), method_code="stripe_card") for _ in range(40)]
    for order in orders[:10]:
        fake_stripe.pay(order.checkout_id)
    TopUpOrder.objects.update(created_at=timezone.now() - timedelta(hours=1))

    def run():
        try:
            return orders_reconcile(limit=200)
        finally:
            connection.close()

    results, errors = run_concurrently(run, [()] * 4)
    assert errors == []
    assert sum(r["completed"] for r in results) == 10 and sum(r["open"] for r in results) == 30
    assert _lookups(fake_stripe) == 40  # each order asked about once
    assert Transaction.objects.filter(kind="topup").count() == 10

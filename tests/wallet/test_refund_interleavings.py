"""Interleavings found by a review of the refund code, each with the balance the user must end with: refused
refunds that had absorbed a dashboard refund, amounts above what is left, sub-cent amounts, failed dashboard
refunds with a shortfall, failures while other refunds stand, and disputes lost again at a later stage."""

import datetime

import pytest

from synstar.money import usd
from tests.factories import make_user
from tests.wallet.test_refund_events import (
    airwallex_event,
    balance,
    paid_airwallex_order,
    paid_stripe_order,
    process,
    stripe_event,
)
from wallet.models import Refund, SystemAccount, TopUpOrder
from wallet.providers import ProviderError, stripe_client
from wallet.services.ledger import credit_create, debit_create
from wallet.services.refunds import order_refund, refunds_resume

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_grant(settings):
    settings.SIGNUP_GRANT_USD = "0"


def spend(user, dollars):
    debit_create(user=user, amount=usd(dollars), sink=SystemAccount.REVENUE, kind="usage", idempotency_key=f"spend{dollars}")


def counters(order):
    order.refresh_from_db()
    return order.status, order.cash_refunded, order.refunded_amount, order.bonus_clawed


def test_refused_admin_refund_lets_the_dashboard_refund_it_absorbed_count(fake_stripe, no_grant, admin_user):
    """Admin $50 intent (watermark 50); Stripe times out; a $60 dashboard refund's figure (60) counts only $10
    above the watermark; the resumed admin refund is refused: the other $50 of the dashboard refund counts."""
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)  # $100 + $3

    def timeout(order, **kw):
        raise ProviderError("timeout", retryable=True)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stripe_client, "refund_create", timeout)
        with pytest.raises(ProviderError):
            order_refund(order_id=order.pk, source="admin", key="a50", cash=usd("50"), actor=admin_user)
    assert balance(user) == usd("50")
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=6000)))
    fake_stripe.refuse_refunds = True  # $60 + $50 is more than the charge
    refunds_resume(older_than=datetime.timedelta(0))
    assert Refund.objects.get(key="a50").status == "failed"
    assert balance(user) == usd("40")  # $103 - $60 - $3 bonus
    assert counters(order) == ("partially_refunded", usd("60"), usd("60"), usd("3"))


def test_admin_refund_asks_the_provider_for_exactly_the_credits_removed(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    spend(user, "60")  # $43 left
    refund = order_refund(order_id=order.pk, source="admin", key="a50", cash=usd("50"), actor=admin_user)
    assert (refund.bonus_removed, refund.base_removed, refund.requested) == (usd("3"), usd("40"), usd("40"))
    assert fake_stripe.refunds[-1]["amount"] == 4000
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=4000)))
    assert balance(user) == 0 and Refund.objects.count() == 1


def test_admin_amount_above_what_is_left_then_refused(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=2000)))
    assert balance(user) == usd("80")
    fake_stripe.refuse_refunds = True
    with pytest.raises(ProviderError):
        order_refund(order_id=order.pk, source="admin", key="a100", cash=usd("100"), actor=admin_user)
    assert counters(order) == ("partially_refunded", usd("20"), usd("20"), usd("3"))
    fake_stripe.refuse_refunds = False
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(order.payment_id, amount=10000, amount_refunded=2500)))
    assert balance(user) == usd("75")


def test_subcent_admin_amount_is_refunded_in_whole_cents(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    refund = order_refund(order_id=order.pk, source="admin", key="odd", cash=usd("12.345"), actor=admin_user)
    assert (refund.status, refund.base_removed, fake_stripe.refunds[-1]["amount"]) == ("succeeded", usd("12.34"), 1234)


def test_resume_goes_on_past_a_refund_it_cannot_finish(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)

    def broken(order, **kw):
        raise RuntimeError("unexpected")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stripe_client, "refund_create", broken)
        for key in ("first", "second"):
            with pytest.raises(RuntimeError):
                order_refund(order_id=order.pk, source="admin", key=key, cash=usd("10"), actor=admin_user)
        assert refunds_resume(older_than=datetime.timedelta(0))["pending"] == 2  # both tried, none stopped the run
    assert refunds_resume(older_than=datetime.timedelta(0))["succeeded"] == 2
    assert balance(user) == usd("80")


def test_a_refund_pending_past_the_providers_idempotency_window_is_left_to_an_operator(fake_stripe, no_grant, admin_user, caplog):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)

    def timeout(order, **kw):
        raise ProviderError("timeout", retryable=True)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stripe_client, "refund_create", timeout)
        with pytest.raises(ProviderError):
            order_refund(order_id=order.pk, source="admin", key="old", cash=usd("10"), actor=admin_user)
    Refund.objects.filter(key="old").update(created_at=Refund.objects.get(key="old").created_at - datetime.timedelta(hours=24))
    assert refunds_resume(older_than=datetime.timedelta(0))["stale"] == 1
    assert fake_stripe.refunds == [] and "check it at the provider" in caplog.text


def test_failed_dashboard_refund_with_a_shortfall_puts_everything_back(fake_stripe, no_grant):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    spend(user, "93")  # $10 left
    pi = order.payment_id
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=5000)))
    assert balance(user) == 0
    process(stripe_event(fake_stripe, "charge.refund.updated", fake_stripe.refund_object(pi, amount=5000, status="failed",
                                                                                       refund_id="re_dash")))
    assert balance(user) == usd("10")
    assert counters(order) == ("completed", 0, 0, 0)


def test_admin_refund_failure_keeps_the_bonus_while_another_refund_stands(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    a = order_refund(order_id=order.pk, source="admin", key="a", cash=usd("30"), actor=admin_user)
    b = order_refund(order_id=order.pk, source="admin", key="b", cash=usd("20"), actor=admin_user)
    assert balance(user) == usd("50")
    process(stripe_event(fake_stripe, "charge.refund.updated", {**fake_stripe.refund_objects[a.provider_refund_id], "status": "failed"}))
    assert balance(user) == usd("80")  # $103 - $20 - $3: money is still out
    process(stripe_event(fake_stripe, "charge.refund.updated", {**fake_stripe.refund_objects[b.provider_refund_id], "status": "failed"}))
    assert balance(user) == usd("103")
    assert counters(order) == ("completed", 0, 0, 0)


def test_failed_dashboard_refund_then_a_new_one_counts(fake_stripe, no_grant):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    spend(user, "93")
    pi = order.payment_id
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=5000)))
    process(stripe_event(fake_stripe, "charge.refund.updated", fake_stripe.refund_object(pi, amount=5000, status="failed",
                                                                                       refund_id="re_dash")))
    credit_create(user=user, amount=usd("50"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="adj")
    before = balance(user)
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=7000)))
    assert balance(user) == before - usd("23")  # $20, and the bonus (back since the failure) goes first again


def test_failure_before_its_figure_never_takes_another_refunds_credits(fake_stripe, no_grant, admin_user):
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    pi = order.payment_id
    a = order_refund(order_id=order.pk, source="admin", key="a", cash=usd("30"), actor=admin_user)
    process(stripe_event(fake_stripe, "charge.refund.updated", fake_stripe.refund_object(pi, amount=4000, status="failed",
                                                                                       refund_id="re_dash")))
    assert balance(user) == usd("70")  # the failed dashboard refund was never counted: nothing to give back
    process(stripe_event(fake_stripe, "charge.refunded", fake_stripe.charge(pi, amount=10000, amount_refunded=7000)))
    assert balance(user) == usd("70")  # its late figure counts nothing either
    process(stripe_event(fake_stripe, "charge.refund.updated", {**fake_stripe.refund_objects[a.provider_refund_id], "status": "failed"}))
    assert balance(user) == usd("103")
    assert counters(order) == ("completed", 0, 0, 0)


def test_airwallex_dispute_won_then_lost_at_pre_arbitration_is_clawed_back_again(fake_airwallex, no_grant):
    user = make_user()
    order = paid_airwallex_order(fake_airwallex, user)
    d = {"id": "dsp_1", "payment_intent_id": order.payment_id, "merchant_order_id": order.order_no, "amount": 100.0,
         "currency": "USD", "payment_method_type": "card"}
    process(airwallex_event(fake_airwallex, "payment_dispute.lost", {**d, "stage": "CHARGEBACK"}))
    assert balance(user) == 0
    process(airwallex_event(fake_airwallex, "payment_dispute.won", {**d, "stage": "CHARGEBACK"}))
    assert balance(user) == usd("103")
    for _ in range(2):
        process(airwallex_event(fake_airwallex, "payment_dispute.lost", {**d, "stage": "PRE_ARBITRATION"}))
    assert balance(user) == 0
    assert TopUpOrder.objects.get(pk=order.pk).status == "refunded"

from datetime import timedelta

import pytest
from django.core.management import call_command

from synstar.errors import Conflict
from synstar.money import usd
from tests.factories import make_user
from tests.wallet.test_webhooks import deliver_airwallex, deliver_stripe
from wallet.models import Refund, SystemAccount, TopUpOrder, Transaction, WebhookEvent
from wallet.selectors.ledger import wallet_statistics
from wallet.services.ledger import debit_create
from wallet.services.refunds import order_refund
from wallet.services.topups import order_complete, order_create, orders_reconcile
from wallet.services.webhooks import webhook_process

pytestmark = pytest.mark.django_db


def paid_stripe_order(fake, user, amount="100"):
    order = order_create(user=user, amount=usd(amount), method_code="stripe_card")
    session = fake.pay(order.checkout_id)
    order_complete(order_id=order.pk, amount_cents=session["amount_total"], currency="usd", payment_id=session["payment_intent"])
    order.refresh_from_db()
    return order


def spend(user, amount):
    debit_create(user=user, amount=usd(amount), sink=SystemAccount.REVENUE, kind="debit", idempotency_key=f"spend:{user.pk}:{amount}")


# --- reconciliation -------------------------------------------------------------------------------


def test_a_lost_webhook_is_recovered_by_reconciliation(fake_stripe):
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    fake_stripe.pay(order.checkout_id)  # paid at Stripe; the webhook never arrives
    assert orders_reconcile() == {"completed": 0, "cancelled": 0, "failed": 0, "open": 0, "errors": 0}  # too recent
    assert orders_reconcile(older_than=timedelta(0))["completed"] == 1
    assert orders_reconcile(older_than=timedelta(0))["completed"] == 0  # nothing left to do
    order.refresh_from_db()
    assert order.status == "completed" and order.payment_id.startswith("pi_")
    assert wallet_statistics(user=user).balance == usd("103.50")
    # The webhook arriving late changes nothing.
    deliver_stripe(fake_stripe, fake_stripe.event("checkout.session.completed", fake_stripe.sessions[order.checkout_id]))
    webhook_process(event_pk=WebhookEvent.objects.get().pk)
    assert Transaction.objects.filter(kind="topup").count() == 1


def test_reconciliation_cancels_expired_and_leaves_open_ones(fake_stripe, fake_airwallex):
    user = make_user()
    expired = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    fake_stripe.sessions[expired.checkout_id]["status"] = "expired"
    order_create(user=user, amount=usd("10"), method_code="stripe_card")  # still open
    awx = order_create(user=user, amount=usd("12.34"), method_code="airwallex_card")
    fake_airwallex.pay(awx.checkout_id)
    counts = orders_reconcile(older_than=timedelta(0))
    assert counts == {"completed": 1, "cancelled": 1, "failed": 0, "open": 1, "errors": 0}
    assert TopUpOrder.objects.get(pk=expired.pk).status == "cancelled"
    assert wallet_statistics(user=user).balance == usd("12.84")


# --- refunds --------------------------------------------------------------------------------------


def test_refund_after_partial_use_claws_back_the_bonus_first(fake_stripe, settings, admin_user):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)  # $100 + $3 bonus
    spend(user, "50")
    refund = order_refund(order_id=order.pk, source=Refund.Source.ADMIN, key="r1", actor=admin_user, reason="customer asked")
    assert (refund.bonus_removed, refund.base_removed, refund.shortfall) == (usd("3"), usd("50"), 0)
    assert wallet_statistics(user=user).balance == 0
    assert fake_stripe.refunds == [{"id": refund.provider_refund_id, "object": "refund", "amount": 5000,
                                    "payment_intent": order.payment_id, "status": "succeeded"}]
    order.refresh_from_db()
    assert (order.status, order.cash_refunded, order.bonus_clawed) == ("partially_refunded", usd("50"), usd("3"))
    call_command("check_ledger")
    # Stripe then reports the refund it made; it is ours, so nothing changes.
    charge = {"id": "ch_1", "object": "charge", "payment_intent": order.payment_id, "amount_refunded": 5000, "currency": "usd"}
    deliver_stripe(fake_stripe, fake_stripe.event("charge.refunded", charge))
    webhook_process(event_pk=WebhookEvent.objects.get().pk)
    assert Refund.objects.count() == 1 and wallet_statistics(user=user).balance == 0
    with pytest.raises(Conflict):
        order_refund(order_id=order.pk, source=Refund.Source.ADMIN, key="r2", actor=admin_user)


def test_partial_admin_refund_then_the_rest(fake_stripe, settings, admin_user):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    first = order_refund(order_id=order.pk, source="admin", key="a", cash=usd("20"), actor=admin_user)
    assert (first.bonus_removed, first.base_removed) == (usd("3"), usd("20"))
    second = order_refund(order_id=order.pk, source="admin", key="b", actor=admin_user)
    assert (second.bonus_removed, second.base_removed) == (0, usd("80"))
    again = order_refund(order_id=order.pk, source="admin", key="b", actor=admin_user)  # same key: same refund
    assert again.pk == second.pk
    assert [r["amount"] for r in fake_stripe.refunds] == [2000, 8000]
    assert wallet_statistics(user=user).balance == 0


def test_provider_refund_beyond_what_can_be_clawed_back_puts_the_account_under_review(fake_stripe, settings):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    spend(user, "90")  # 13 left of 103
    charge = {"id": "ch_9", "object": "charge", "payment_intent": order.payment_id, "amount_refunded": 10000, "currency": "usd"}
    for _ in range(2):  # delivered twice
        deliver_stripe(fake_stripe, fake_stripe.event("charge.refunded", charge))
    for event in WebhookEvent.objects.all():
        webhook_process(event_pk=event.pk)
    refund = Refund.objects.get()
    assert (refund.bonus_removed, refund.base_removed, refund.shortfall) == (usd("3"), usd("10"), usd("90"))
    assert wallet_statistics(user=user).balance == 0
    user.refresh_from_db()
    assert (user.status, user.review_reason) == ("under_review", "payment")
    assert "$90.00 more than could be clawed back" in user.status_note
    call_command("check_ledger")


def test_dispute_takes_the_same_path(fake_airwallex, settings):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = order_create(user=user, amount=usd("100"), method_code="airwallex_card")
    intent = fake_airwallex.pay(order.checkout_id)
    deliver_airwallex(fake_airwallex, fake_airwallex.event("payment_intent.succeeded", intent))
    deliver_airwallex(fake_airwallex, fake_airwallex.event(
        "payment_dispute.accepted", {"id": "dsp_1", "payment_intent_id": intent["id"], "amount": 40.0, "currency": "USD"}))
    for event in WebhookEvent.objects.order_by("id"):
        webhook_process(event_pk=event.pk)
    refund = Refund.objects.get()
    assert (refund.source, refund.bonus_removed, refund.base_removed) == ("dispute", usd("3"), usd("40"))
    assert wallet_statistics(user=user).balance == usd("60")


def test_admin_refund_action(client, fake_stripe, admin_user, settings):
    settings.SIGNUP_GRANT_USD = "0"
    user = make_user()
    order = paid_stripe_order(fake_stripe, user)
    client.force_login(admin_user)
    url = "/admin/wallet/topuporder/"
    form = client.post(url, {"action": "refund_action", "_selected_action": [order.pk]})
    key = form.context["form"].initial["idempotency_key"]
    data = {"action": "refund_action", "_selected_action": [order.pk], "apply": "1", "amount": "30", "reason": "goodwill", "idempotency_key": key}
    client.post(url, data)
    client.post(url, data)  # double submit
    assert Refund.objects.count() == 1
    assert wallet_statistics(user=user).balance == usd("70")
    assert Refund.objects.get().actor == admin_user

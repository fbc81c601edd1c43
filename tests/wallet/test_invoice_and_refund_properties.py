"""Property tests for the money rules of issue 13: what a refund request may return (the refund rule,
`refund_quote`), and what an invoice plus its credit notes may show, whatever was spent and refunded."""

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from synstar.money import from_cents, usd
from tests.factories import make_user
from wallet.models import CreditNote, Refund, SystemAccount, TopUpOrder
from wallet.selectors.ledger import ledger_problems, wallet_statistics
from wallet.services.invoices import invoice_issue, invoice_request_create
from wallet.services.ledger import debit_create
from wallet.services.refund_requests import refund_request_approve, refund_request_create
from wallet.services.refunds import NothingRefundable, order_refund, refund_quote
from wallet.services.topups import order_complete, order_create

CENT = from_cents(1)
nanos = st.integers(min_value=0, max_value=usd("5000"))


@given(amount=st.integers(min_value=CENT, max_value=usd("5000")), data=st.data())
def test_a_quote_never_returns_used_credits_and_takes_the_bonus_first(amount, data):
    bonus = data.draw(st.integers(min_value=0, max_value=amount))
    refunded = data.draw(st.integers(min_value=0, max_value=amount))
    clawed = data.draw(st.integers(min_value=0, max_value=bonus))
    available = data.draw(st.integers(min_value=-usd("10"), max_value=amount + bonus + usd("10")))
    order = TopUpOrder(amount=amount, bonus=bonus, refunded_amount=refunded, bonus_clawed=clawed, status="completed")
    quote = refund_quote(order=order, available=available)
    assert quote.cash % CENT == 0 and quote.cash >= 0 and quote.bonus >= 0
    assert quote.cash <= amount - refunded  # never more than the base not yet refunded
    assert quote.cash + quote.bonus <= max(available, 0)  # never credits that were used
    if quote.cash:
        assert quote.bonus == min(bonus - clawed, max(available, 0))  # the bonus goes first, all of what is left
        # what is left out is less than a cent, or the base is exhausted, or nothing more is available
        assert (amount - refunded - quote.cash < CENT) or (max(available, 0) - quote.bonus - quote.cash < CENT)
    else:
        assert quote.bonus == 0
    assert refund_quote(order=TopUpOrder(amount=amount, bonus=bonus, status="pending"), available=available).cash == 0


@pytest.mark.django_db(transaction=True)
@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spent=st.integers(min_value=0, max_value=130), later=st.integers(min_value=0, max_value=130))
def test_approval_refunds_exactly_what_the_rule_allows_then(topup_config, settings, spent, later):
    settings.SIGNUP_GRANT_USD = "0"
    admin, user = make_user(is_staff=True), make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd")  # $100 + $3 bonus
    spent, later = min(spent, 103), min(later, 103 - min(spent, 103))
    if spent:
        debit_create(user=user, amount=usd(str(spent)), sink=SystemAccount.REVENUE, kind="debit", idempotency_key=f"s1:{user.pk}")
    try:
        request = refund_request_create(user=user, order_no=order.order_no, reason="property")
    except NothingRefundable:
        assert spent >= 100
        return
    if later:
        debit_create(user=user, amount=usd(str(later)), sink=SystemAccount.REVENUE, kind="debit", idempotency_key=f"s2:{user.pk}")
    balance = wallet_statistics(user=user).balance
    order.refresh_from_db()
    expected = refund_quote(order=order, available=balance)
    result = refund_request_approve(request_id=request.pk, actor=admin)
    refund = Refund.objects.filter(order=order).first()
    if expected.cash:
        assert result.status == "approved"
        assert (refund.base_removed, refund.bonus_removed) == (expected.cash, expected.bonus)
    else:
        assert result.status == "failed" and refund is None
    assert wallet_statistics(user=user).balance == balance - expected.cash - expected.bonus >= 0
    assert ledger_problems() == []


@pytest.mark.django_db(transaction=True)
@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(st.integers(min_value=1, max_value=40), max_size=2),
       after=st.lists(st.integers(min_value=1, max_value=40), max_size=3))
def test_an_invoice_and_its_credit_notes_never_show_more_than_was_paid_minus_refunded(topup_config, settings, before, after):
    settings.SIGNUP_GRANT_USD = "0"
    admin, user = make_user(is_staff=True), make_user()
    order = order_create(user=user, amount=usd("100"), method_code="stripe_card")
    order_complete(order_id=order.pk, amount_cents=10000, currency="usd")
    for i, dollars in enumerate(before):
        order_refund(order_id=order.pk, source="admin", key=f"b{order.pk}:{i}", cash=usd(str(dollars)), actor=admin)
    request = invoice_request_create(user=user, company_name="ACME", tax_id="T1", order_nos=[order.order_no], delivery="email")
    issued = invoice_issue(request_id=request.pk, actor=admin)
    assert issued.invoiced_amount == usd(str(100 - sum(before)))
    for i, dollars in enumerate(after):
        try:
            order_refund(order_id=order.pk, source="admin", key=f"a{order.pk}:{i}", cash=usd(str(dollars)), actor=admin)
        except NothingRefundable:
            pass
    order.refresh_from_db()
    credited = sum(CreditNote.objects.filter(invoice=issued).values_list("amount", flat=True))
    assert issued.invoiced_amount - credited == order.amount - order.cash_refunded
    numbers = sorted(CreditNote.objects.values_list("number", flat=True))  # across examples: still no gap
    assert numbers == list(range(1, len(numbers) + 1))
    assert ledger_problems() == []

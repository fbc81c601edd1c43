
import pytest
from django.core.management import call_command

from synstar.errors import AccountInDebt, InsufficientBalance, InvalidRequest
from synstar.money import usd
from tests.factories import fund, make_user
from tests.metering import meter_expire, meter_hold, meter_release, meter_settle
from wallet.models import Account, Entry, Hold, SystemAccount, Transaction
from wallet.selectors.ledger import wallet_statistics
from wallet.services.ledger import IdempotencyConflict, adjustment_create, credit_create, debit_create, main_account

pytestmark = pytest.mark.django_db


def stats(user):
    return wallet_statistics(user=user)


def test_new_user_has_the_signup_grant_and_both_accounts():
    user = make_user()
    assert stats(user).balance == usd("0.50")
    assert set(Account.objects.filter(user=user).values_list("kind", flat=True)) == {"main", "referral"}


def test_credit_posts_balanced_entries_and_updates_cached_balance():
    user = make_user()
    txn = credit_create(
        user=user, amount=usd("10"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="k1"
    )
    assert sorted(txn.entries.values_list("amount", flat=True)) == [-usd("10"), usd("10")]
    assert stats(user).balance == usd("10.50")


def test_same_idempotency_key_returns_first_result_and_changes_nothing():
    user = make_user()
    first = credit_create(user=user, amount=usd("5"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="k")
    again = credit_create(user=user, amount=usd("5"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="k")
    assert again.pk == first.pk and again.replayed and not first.replayed
    assert stats(user).balance == usd("5.50")
    assert Entry.objects.filter(transaction=first).count() == 2


def test_idempotency_key_reused_for_a_different_posting_is_a_conflict():
    user = make_user()
    credit_create(user=user, amount=usd("5"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as info:
        credit_create(user=user, amount=usd("6"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="k")
    assert info.value.status == 409
    assert stats(user).balance == usd("5.50")


def test_debit_beyond_available_is_refused_and_changes_nothing():
    user = make_user(balance="1.00")  # 1.50 in all
    before = Transaction.objects.count()
    with pytest.raises(InsufficientBalance) as info:
        debit_create(user=user, amount=usd("2"), sink=SystemAccount.REVENUE, kind="debit", idempotency_key="d1")
    assert info.value.status == 402
    assert info.value.extra["available"] == "1.50"
    assert stats(user).balance == usd("1.50")
    assert Transaction.objects.count() == before


def test_debit_cannot_spend_held_credit():
    user = make_user()  # 0.50
    meter_hold(user, usd("0.40"))
    with pytest.raises(InsufficientBalance):
        debit_create(user=user, amount=usd("0.20"), sink=SystemAccount.REVENUE, kind="debit", idempotency_key="d")
    debit_create(user=user, amount=usd("0.10"), sink=SystemAccount.REVENUE, kind="debit", idempotency_key="d2")
    assert stats(user).available == 0


@pytest.mark.parametrize("amount", [0, -5, "5", 1.5, True])
def test_credit_rejects_non_positive_or_non_integer_amounts(amount):
    user = make_user()
    with pytest.raises(InvalidRequest):
        credit_create(user=user, amount=amount, source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="x")
    assert stats(user).balance == usd("0.50")


def test_adjustment_records_actor_and_reason(admin_user):
    user = make_user()
    txn = adjustment_create(user=user, amount=usd("20"), reason="goodwill for outage", actor=admin_user, idempotency_key="a1")
    assert (txn.kind, txn.actor, txn.reason) == ("adjustment", admin_user, "goodwill for outage")
    adjustment_create(user=user, amount=-usd("5"), reason="duplicate credit", actor=admin_user, idempotency_key="a2")
    assert stats(user).balance == usd("15.50")


def test_adjustment_needs_reason_and_staff_actor_and_cannot_overdraw(admin_user):
    user = make_user()
    with pytest.raises(InvalidRequest, match="reason"):
        adjustment_create(user=user, amount=usd("1"), reason="  ", actor=admin_user, idempotency_key="a")
    with pytest.raises(InvalidRequest, match="staff"):
        adjustment_create(user=user, amount=usd("1"), reason="x", actor=user, idempotency_key="a")
    with pytest.raises(InsufficientBalance):
        adjustment_create(user=user, amount=-usd("1"), reason="x", actor=admin_user, idempotency_key="a")
    assert stats(user).balance == usd("0.50")


def test_hold_freezes_credit_and_settle_charges_the_real_cost():
    user = make_user(balance="9.50")  # 10.00
    account = main_account(user=user)
    hold = meter_hold(user, usd("2"))
    s = stats(user)
    assert (s.balance, s.held, s.available) == (usd("10"), usd("2"), usd("8"))
    assert not Entry.objects.filter(account=account, transaction__kind="settlement").exists()

    meter_settle(hold, usd("1.25"))
    s = stats(user)
    assert (s.balance, s.held, s.consumed, s.request_count) == (usd("8.75"), 0, usd("1.25"), 1)


def test_settle_is_exactly_once():
    user = make_user(balance="9.50")
    hold = meter_hold(user, usd("2"))
    meter_settle(hold, usd("1"))
    meter_settle(hold, usd("1.5"))  # a second report for the closed request changes nothing
    assert Hold.objects.get(pk=hold.hold_id).settled_amount == usd("1")
    s = stats(user)
    assert (s.balance, s.held, s.request_count) == (usd("9"), 0, 1)


def test_release_lifts_the_hold_without_charge_and_only_once():
    user = make_user()
    hold = meter_hold(user, usd("0.30"))
    meter_release(hold)
    meter_release(hold)
    meter_settle(hold, usd("0.10"))  # a late success report for a released request changes nothing
    s = stats(user)
    assert (s.balance, s.held, s.request_count) == (usd("0.50"), 0, 0)
    assert Hold.objects.get(pk=hold.hold_id).status == "released"


def test_hold_beyond_available_is_refused():
    user = make_user()
    account = main_account(user=user)
    meter_hold(user, usd("0.30"))
    with pytest.raises(InsufficientBalance) as info:
        meter_hold(user, usd("0.30"))
    assert info.value.extra["available"] == "0.20"
    assert Hold.objects.filter(account=account).count() == 1


def test_settlement_above_the_hold_puts_the_account_in_debt_and_refuses_new_holds():
    user = make_user()  # 0.50
    main_account(user=user)
    hold = meter_hold(user, usd("0.40"))
    meter_settle(hold, usd("0.70"))
    s = stats(user)
    assert (s.balance, s.in_debt, s.debt) == (-usd("0.20"), True, usd("0.20"))
    with pytest.raises(AccountInDebt) as info:
        meter_hold(user, usd("0.01"))
    assert info.value.status == 402 and info.value.code == "account_in_debt"
    fund(user, "1.00")
    meter_hold(user, usd("0.80"))
    call_command("check_ledger")


def test_expired_hold_settles_once_when_the_late_report_arrives():
    user = make_user(balance="0.50")  # 1.00
    main_account(user=user)
    hold = meter_hold(user, usd("0.60"))
    meter_expire(hold)
    assert stats(user).held == 0
    meter_settle(hold, usd("0.25"))
    meter_settle(hold, usd("0.25"))
    s = stats(user)
    assert (s.balance, s.held, s.request_count) == (usd("0.75"), 0, 1)
    assert Hold.objects.get(pk=hold.hold_id).status == "settled"


def test_zero_cost_settlement_counts_the_request_without_a_posting():
    user = make_user()
    hold = meter_hold(user, usd("0.10"))
    meter_settle(hold, 0)
    s = stats(user)
    assert (s.balance, s.held, s.request_count) == (usd("0.50"), 0, 1)

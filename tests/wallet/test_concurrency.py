"""Races on real PostgreSQL with real threads: no overdraft, no double posting, exactly-once holds."""

import pytest
from django.core.management import call_command

from synstar.errors import InsufficientBalance
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.metering import meter_hold, meter_ready, meter_release, meter_settle
from wallet.models import Hold, SystemAccount, Transaction
from wallet.selectors.ledger import wallet_statistics
from wallet.services.ledger import credit_create, debit_create, main_account

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 24


def test_concurrent_holds_never_overdraw_one_account():
    """Gateways' holds on one account through the metering path: never more than is available."""
    user = make_user(balance="4.50")  # 5.00: room for exactly ten 0.50 holds
    meter_ready(user)  # the API token and the gateway exist before the race
    results, errors = run_concurrently(
        lambda: meter_hold(user, usd("0.50")), [()] * THREADS
    )
    assert len(results) == 10
    assert len(errors) == THREADS - 10 and all(isinstance(e, InsufficientBalance) for e in errors)
    s = wallet_statistics(user=user)
    assert (s.held, s.available) == (usd("5"), 0)
    call_command("check_ledger")


def test_concurrent_debits_never_overdraw():
    user = make_user(balance="2.50")  # 3.00
    results, errors = run_concurrently(
        lambda i: debit_create(
            user=user, amount=usd("0.40"), sink=SystemAccount.REVENUE, kind="debit", idempotency_key=f"d{i}"
        ),
        [(i,) for i in range(THREADS)],
    )
    assert len(results) == 7  # 7 x 0.40 = 2.80 <= 3.00 < 3.20
    assert all(isinstance(e, InsufficientBalance) for e in errors)
    assert wallet_statistics(user=user).balance == usd("0.20")
    call_command("check_ledger")


def test_same_idempotency_key_from_many_threads_posts_once():
    user = make_user()
    results, errors = run_concurrently(
        lambda: credit_create(
            user=user, amount=usd("7"), source=SystemAccount.PROMOTIONS, kind="grant", idempotency_key="once"
        ),
        [()] * THREADS,
    )
    assert errors == []
    assert len({t.pk for t in results}) == 1
    assert sum(1 for t in results if not t.replayed) == 1
    assert Transaction.objects.filter(idempotency_key="once").count() == 1
    assert wallet_statistics(user=user).balance == usd("7.50")
    call_command("check_ledger")


def test_settle_and_release_race_on_each_hold_closes_it_exactly_once():
    """Success and failure reports race on each request, each followed by the worker's settlement: each
    hold closes exactly once (charged or released), never both, and the books balance."""
    user = make_user(balance="99.50")
    account_id = main_account(user=user).pk
    holds = [meter_hold(user, usd("1")) for _ in range(10)]

    def close(generation, how):
        meter_settle(generation, usd("0.75")) if how == "settle" else meter_release(generation)

    jobs = [(h, how) for h in holds for how in ("settle", "settle", "release", "release")]
    results, errors = run_concurrently(close, jobs)
    assert errors == []
    settled = Hold.objects.filter(account_id=account_id, status="settled").count()
    released = Hold.objects.filter(account_id=account_id, status="released").count()
    assert settled + released == 10
    assert Transaction.objects.filter(kind="settlement").count() == settled
    s = wallet_statistics(user=user)
    assert (s.held, s.request_count) == (0, settled)
    assert s.balance == usd("100") - settled * usd("0.75")
    call_command("check_ledger")


def test_failed_first_use_of_a_system_account_does_not_poison_later_postings():
    user = make_user()
    with pytest.raises(InsufficientBalance):
        debit_create(user=user, amount=usd("5"), sink=SystemAccount.REFUNDS, kind="debit", idempotency_key="r1")
    debit_create(user=user, amount=usd("0.10"), sink=SystemAccount.REFUNDS, kind="debit", idempotency_key="r2")
    assert wallet_statistics(user=user).balance == usd("0.40")

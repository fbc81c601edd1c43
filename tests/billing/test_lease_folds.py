"""Settlement never locks a lease: it closes a hold in a lease with what it spent, and the lease's holder
folds it in later. These races run on real PostgreSQL with real threads: a settlement and the lease's
close in both orders (each waiting for the other's locks), and many threads placing, settling, folding,
consolidating and closing at once. After each, `check_ledger` is clean and the money adds up."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from billing.models import Generation
from billing.services.metering import generations_settle_batch, leases, metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from synstar.errors import AccountInDebt, InsufficientBalance
from synstar.money import usd
from tests.factories import make_user
from tests.metering import MODEL, UNIT_PRICE, meter_ready
from wallet.models import Account, Hold, Lease
from wallet.selectors.ledger import ledger_problems
from wallet.services.ledger import lease_resize, lease_return, lease_take, leases_consolidate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.leases]

HOLD = usd("0.05")


def _units(nanos):
    return Decimal(nanos) / UNIT_PRICE


def _in_thread(target, *args):
    """Run `target` in a thread with its own database connection; returns (thread, result list)."""
    result: list = []

    def run():
        try:
            result.append(target(*args))
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            result.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _waiting_for_locks(n, timeout=10.0):
    """Block until `n` other backends of this database wait on a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] >= n:
                return
        time.sleep(0.02)
    raise AssertionError(f"{n} backends never waited on a lock")


def _lease_with_reported_holds(user, n=4, costs=None):
    """A lease of $1 on the user's account with `n` holds of $0.05 placed on it and reported."""
    account = Account.objects.get(user=user, kind="main")
    gateway, raw = meter_ready(user)
    state = lease_take(account_id=account.pk, want=usd("1"), minimum=usd("1"), seconds=600)
    leases.adopt(state)
    generations = []
    for i in range(n):
        g = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=_units(HOLD))
        assert Hold.objects.get(pk=g.hold_id).in_lease
        cost = (costs or [usd("0.02")] * n)[i]
        metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(units=_units(cost)))
        generations.append(g)
    leases.forget()
    return account, Lease.objects.get(pk=state.lease_id), generations


def _hold_account_lock(account_id, release: threading.Event, locked: threading.Event):
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=account_id)
        locked.set()
        release.wait(20)


@pytest.mark.parametrize("first", ["settlement", "close"])
def test_a_settlement_and_the_lease_close_in_either_order_count_each_hold_once(first):
    user = make_user(balance="9.50")
    account, lease, _ = _lease_with_reported_holds(user, costs=[usd("0.02"), usd("0.05"), usd("0.07"), 0])
    assert Account.objects.get(pk=account.pk).held == usd("1")

    # Something else holds the account row, so whichever of the two starts first stops with its own locks
    # taken (settlement: the generations and holds; the close: the lease and the holds in it).
    release, locked = threading.Event(), threading.Event()
    blocker, _ = _in_thread(_hold_account_lock, account.pk, release, locked)
    locked.wait(10)
    if first == "settlement":
        settler, settled = _in_thread(generations_settle_batch)
        _waiting_for_locks(1)  # settlement waits for the account, holding the four holds
        closer, closed = _in_thread(lambda: lease_return(lease_id=lease.pk))
        _waiting_for_locks(2)  # the close waits for a hold settlement has locked
    else:
        closer, closed = _in_thread(lambda: lease_return(lease_id=lease.pk))
        _waiting_for_locks(1)  # the close waits for the account, holding the lease and its holds
        settler, settled = _in_thread(generations_settle_batch)
        settler.join(10)  # settlement does not wait: it skips the holds the close has locked
        assert settled == [0]
    release.set()
    for thread in (blocker, settler, closer):
        thread.join(30)
    assert closed == [True]
    if first == "close":
        assert generations_settle_batch() == 4  # the next batch settles them, on the account now
    else:
        assert settled == [4]

    account.refresh_from_db()
    charged = usd("0.02") + usd("0.05") + usd("0.07")
    assert (account.balance, account.held) == (usd("10") - charged, 0)
    assert not Hold.objects.filter(in_lease=True).exists()
    assert Lease.objects.get(pk=lease.pk).status == "returned"
    assert ledger_problems() == []


def test_a_fold_takes_only_closed_holds_and_frees_what_they_did_not_spend():
    user = make_user(balance="9.50")
    account, lease, generations = _lease_with_reported_holds(user, n=3, costs=[usd("0.01"), usd("0.08"), 0])
    gateway, raw = meter_ready(user)
    leases.adopt(lease_resize(lease_id=lease.pk, headroom=usd("0.85"), seconds=600))  # nothing closed yet: nothing folds
    still_open = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=_units(HOLD))
    assert generations_settle_batch() == 3  # settlement closes the three without touching the lease
    lease.refresh_from_db()
    account.refresh_from_db()
    # The lease is untouched; the account paid $0.09 and its held fell by what the holds spent of the lease
    # ($0.01 + $0.05: the hold that cost $0.08 spent its whole $0.05), so its available is exact at once.
    assert (lease.used, lease.size) == (4 * HOLD, usd("1"))
    assert (account.balance, account.held) == (usd("10") - usd("0.09"), usd("1") - usd("0.06"))
    assert ledger_problems() == []

    state = lease_resize(lease_id=lease.pk, headroom=0, seconds=600)  # the holder folds them in
    # used: the open hold; size: used (headroom 0); held: the open hold; the unspent parts came back.
    assert (state.used, state.size) == (HOLD, HOLD)
    account.refresh_from_db()
    assert account.held == HOLD
    assert list(Hold.objects.filter(in_lease=True).values_list("pk", flat=True)) == [still_open.hold_id]
    assert ledger_problems() == []


def test_an_expired_hold_in_a_lease_spends_nothing_even_if_its_report_comes_late():
    user = make_user(balance="9.50")
    account, lease, _ = _lease_with_reported_holds(user, n=0)
    gateway, raw = meter_ready(user)
    leases.adopt(lease_resize(lease_id=lease.pk, headroom=usd("1"), seconds=600))
    g = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=_units(HOLD))
    Generation.objects.filter(pk=g.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert metering_sweep()["expired"] == 1
    metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(units=_units(usd("0.04"))))
    assert generations_settle_batch() == 1  # the late report is charged once, from the balance
    hold = Hold.objects.get(pk=g.hold_id)
    assert (hold.status, hold.lease_spent, hold.in_lease) == ("settled", 0, True)
    assert lease_return(lease_id=lease.pk)
    account.refresh_from_db()
    assert (account.balance, account.held) == (usd("10") - usd("0.04"), 0)
    assert ledger_problems() == []


@override_settings(METERING_LEASE_MIN_RATE=1, METERING_LEASE_SECONDS=1)
def test_many_threads_placing_settling_folding_and_closing_at_once_lose_nothing():
    """Eight threads place holds through the real lease path (leases taken, renewed every third of a
    second with their folds, returned now and then) and report them until the account runs out, two
    settle in batches, one resizes and consolidates leases and runs the sweeper; at the end every lease
    is returned, the account's held is zero and its balance down by exactly what was charged."""
    user = make_user(balance="4.50")
    account = Account.objects.get(user=user, kind="main")
    gateway, raw = meter_ready(user)
    stop = threading.Event()
    charged, errors = [], []
    lock = threading.Lock()

    def guarded(body):
        """A thread's body: its failure is recorded for the test, its connection closed."""
        def run(*args):
            try:
                body(*args)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()
        return run

    def repeatedly(step, pause):
        def loop():
            while not stop.is_set():
                step()
                time.sleep(pause)
        return loop

    def spender(seed):
        n = 0
        while not stop.is_set() and n < 60:
            n += 1
            try:
                g = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=_units(HOLD))
            except (InsufficientBalance, AccountInDebt):
                continue
            cost = usd("0.01") * ((seed + n) % 7)
            outcome = "failed" if (seed + n) % 5 == 0 else "succeeded"
            metering_report(gateway=gateway, public_id=g.public_id, outcome=outcome, usage=Usage(units=_units(cost)))
            if outcome == "succeeded":
                with lock:
                    charged.append(cost)
            lease_id = Hold.objects.get(pk=g.hold_id).lease_id
            if n % 9 == 0 and lease_id:
                lease_return(lease_id=lease_id)  # the holder hands it back (its cache finds it closed)

    def fold_and_sweep():
        for lease_id in Lease.objects.filter(status="open").values_list("pk", flat=True):
            lease_resize(lease_id=lease_id, headroom=usd("0.2"), seconds=600)
        leases_consolidate(account_id=account.pk)
        metering_sweep()

    threads = [threading.Thread(target=guarded(spender), args=(i,)) for i in range(8)]
    settle = repeatedly(lambda: generations_settle_batch(limit=7), 0.005)
    others = [threading.Thread(target=guarded(settle)), threading.Thread(target=guarded(settle)),
              threading.Thread(target=guarded(repeatedly(fold_and_sweep, 0.01)))]
    for t in threads + others:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    for t in others:
        t.join(60)
    assert errors == []
    while generations_settle_batch():
        pass
    for lease_id in Lease.objects.filter(status="open").values_list("pk", flat=True):
        lease_return(lease_id=lease_id)
    account.refresh_from_db()
    assert Lease.objects.filter(holds__isnull=False).distinct().count() > 1  # holds did go on leases
    assert (account.balance, account.held) == (usd("5") - sum(charged), 0)
    assert not Hold.objects.filter(status="open").exists() and not Hold.objects.filter(in_lease=True).exists()
    assert ledger_problems() == []

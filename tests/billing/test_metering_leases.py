"""Leases for a hot account, on real PostgreSQL with a real Celery worker settling through the broker:
64 threads spend one account down to nothing (never more than it has, at any moment), and a gateway
process killed while it holds a lease loses nothing."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from billing.models import ApiToken, Generation
from billing.services.metering import metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from synstar.errors import AccountInDebt, InsufficientBalance
from synstar.money import usd
from tests.factories import make_user
from tests.metering import MODEL, UNIT_PRICE, meter_ready
from wallet.models import Account, Hold, Lease
from wallet.selectors.ledger import ledger_problems

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.leases]

ESTIMATE = usd("0.05")
UNITS = Decimal(ESTIMATE // UNIT_PRICE)  # a hold of exactly ESTIMATE; a success is charged exactly its hold


def _wait_until_settled(timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Generation.objects.filter(state="reported").exists():
            return
        time.sleep(0.25)
    raise AssertionError(f"{Generation.objects.filter(state='reported').count()} reports never settled")


@override_settings(METERING_SETTLE_BATCH_WINDOW_MS=200)
def test_64_threads_spend_50_dollars_exactly_and_never_more(celery_worker):
    user = make_user(balance="49.50")  # + the $0.50 signup grant
    account = Account.objects.get(user=user, kind="main")
    assert account.balance == usd("50")
    gateway, raw = meter_ready(user)  # one token: the account and the token are both hot
    outcomes = {"succeeded": 0, "failed": 0, "refused": 0}
    last_success = [time.monotonic()]
    lock = threading.Lock()
    errors: list = []
    stop_monitor = threading.Event()
    samples = [0]

    def monitor():
        """At every moment: no overspend (balance never below zero, held never above balance)."""
        try:
            with connection.cursor() as cursor:
                while not stop_monitor.is_set():
                    cursor.execute("SELECT balance, held FROM wallet_account WHERE id = %s", [account.pk])
                    balance, held = cursor.fetchone()
                    assert balance >= 0 and 0 <= held <= balance, (balance, held)
                    samples[0] += 1
                    time.sleep(0.002)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def work(seed):
        n = 0
        try:
            while True:
                try:
                    generation = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=UNITS)
                except (InsufficientBalance, AccountInDebt):
                    with lock:
                        outcomes["refused"] += 1
                        idle = time.monotonic() - last_success[0]
                    if idle > 4:  # nothing fitted for a while, releases included: the money is spent
                        return
                    time.sleep(0.05)
                    continue
                with lock:
                    last_success[0] = time.monotonic()
                n += 1
                outcome = "failed" if (n + seed) % 10 == 0 else "succeeded"  # a failure hands its hold back
                metering_report(gateway=gateway, public_id=generation.public_id, outcome=outcome,
                                usage=Usage(units=UNITS) if outcome == "succeeded" else None)
                with lock:
                    outcomes[outcome] += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{exc!r} caused by {exc.__cause__!r}")
        finally:
            connection.close()

    watcher = threading.Thread(target=monitor)
    watcher.start()
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    _wait_until_settled()
    # A thread gives up after a few idle seconds; on a loaded machine the last threads may all give up while
    # a lease still held the last requests' room. Whatever is left must still be spendable, request by
    # request (a refused hold consolidates the leases), until the account refuses: then nothing that one
    # more request would fit is left.
    left_over = 0
    while True:
        try:
            generation = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=UNITS)
        except (InsufficientBalance, AccountInDebt):
            break
        metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded", usage=Usage(units=UNITS))
        outcomes["succeeded"] += 1
        left_over += 1
    assert left_over <= 64, left_over  # at most one request per thread was left behind
    _wait_until_settled()
    stop_monitor.set()
    watcher.join()
    assert errors == []
    assert samples[0] > 100

    # Exactly as many requests succeeded as $50 pays for at $0.05 each; nothing left that one more would fit.
    assert outcomes["succeeded"] == 1000, outcomes
    assert outcomes["failed"] > 0 and outcomes["refused"] > 0
    account.refresh_from_db()
    assert account.balance == 0 and account.consumed == usd("50") and account.request_count == 1000
    # Most holds went to leases, several of them (striped over the threads), not to the account row.
    on_lease = Hold.objects.filter(lease__isnull=False).count()
    assert on_lease > 500 and Lease.objects.count() >= 2, (on_lease, Lease.objects.count())
    token = ApiToken.objects.get(user=user)
    assert (token.used, token.held) == (usd("50"), 0)
    assert Generation.objects.filter(state="settled").aggregate(s=Sum("final_cost"))["s"] == usd("50")
    assert ledger_problems() == []
    # The leases still open hold nothing; past their deadline the sweeper hands them back.
    metering_sweep(now=timezone.now() + timedelta(hours=1))
    account.refresh_from_db()
    assert account.held == 0 and not Lease.objects.filter(status="open").exists()


def _holder_env() -> dict:
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "synstar.settings", "DEBUG": "false",
            "METERING_LEASES": "true", "METERING_LEASE_MIN_RATE": "1", "METERING_LEASE_SECONDS": "3",
            "METERING_SETTLE_BATCH_WINDOW_MS": "100000"}


@override_settings(METERING_SETTLE_BATCH_WINDOW_MS=200)
def test_a_gateway_killed_while_it_holds_a_lease_loses_nothing(celery_worker):
    user = make_user(balance="99.50")
    account = Account.objects.get(user=user, kind="main")
    gateway, raw = meter_ready(user)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.lease_holder", gateway.raw_key, raw, "20", str(UNITS)],
        cwd=settings.BASE_DIR, env=_holder_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    public_ids = []
    try:
        for line in holder.stdout:
            if line.strip() == "ready":
                break
            public_ids.append(line.strip())
        assert len(public_ids) == 20, holder.stderr.read() if holder.poll() is not None else public_ids
        lease = Lease.objects.get(account=account, status="open")
        assert lease.holder.endswith(f":{holder.pid}")
        assert lease.used == Hold.objects.filter(lease=lease, status="open").aggregate(s=Sum("amount"))["s"] > 0
        assert lease.size > lease.used  # it reserved more than it placed
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)
    account.refresh_from_db()
    assert account.held == lease.size  # the lease is all that is held; its holds are inside it

    # Before its deadline the lease stays (its holder might only be slow); after it, the sweeper frees it.
    metering_sweep()
    assert Lease.objects.get(pk=lease.pk).status == "open"
    time.sleep(3.2)
    assert metering_sweep()["leases"] == 1
    lease.refresh_from_db()
    account.refresh_from_db()
    assert lease.status == "expired"
    open_holds = Hold.objects.filter(status="open").aggregate(s=Sum("amount"))["s"]
    assert account.held == open_holds == 20 * ESTIMATE  # the unused part came back; the holds still count
    assert ledger_problems() == []

    # The dead gateway's requests are reported (by its replacement) and each settles exactly once.
    for i, public_id in enumerate(public_ids):
        metering_report(gateway=gateway, public_id=public_id, outcome="succeeded" if i % 4 else "failed",
                        usage=Usage(units=UNITS // 2))
        metering_report(gateway=gateway, public_id=public_id, outcome="succeeded", usage=Usage(units=UNITS // 2))
    _wait_until_settled()
    account.refresh_from_db()
    charged = 15 * (ESTIMATE // 2)
    assert (account.balance, account.held, account.request_count) == (usd("100") - charged, 0, 15)
    assert Generation.objects.filter(state="settled").count() == 15
    assert Generation.objects.filter(state="released").count() == 5
    assert not Hold.objects.filter(status="open").exists()

"""Metering under load on real PostgreSQL, with a real Celery worker settling through the broker."""

import random
import threading
import time

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing.models import ApiToken, Generation, TokenGroup
from billing.services.metering import TokenQuotaExceeded, metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from billing.services.tokens import token_create
from synstar.errors import AccountInDebt, InsufficientBalance
from synstar.money import usd
from tests.factories import make_user
from wallet.models import Account, Hold, Transaction
from wallet.selectors.ledger import ledger_problems

pytestmark = pytest.mark.django_db(transaction=True)

USERS, TOKENS_PER_USER, REQUESTS, THREADS = 10, 10, 2000, 8


def _setup(catalog_gateway):
    users = []
    group = TokenGroup.objects.get(name="default")
    tokens = []
    for i in range(USERS):
        # Some users are poor, so balance refusals happen too.
        user = make_user(balance=None if i < 3 else "20")  # $0.50 or $20.50
        users.append(user)
        for j in range(TOKENS_PER_USER):
            quota = usd("0.05") if j % 2 else None  # half the tokens have a small quota
            token, raw = token_create(user=user, name=f"t{j}", group=group, quota=quota)
            tokens.append((token.pk, raw))
    return users, tokens


def _wait_until_settled(timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Generation.objects.filter(state="reported").exists():
            return
        time.sleep(0.25)
    raise AssertionError(f"{Generation.objects.filter(state='reported').count()} reports never settled")


def _assert_books_balance(users, initial):
    assert not Generation.objects.filter(state__in=["held", "reported"]).exists()
    assert not Hold.objects.filter(status="open").exists()
    settled = Generation.objects.filter(state="settled")
    # Every settled generation with a cost has exactly one settlement posting, and no others exist.
    charged = settled.filter(final_cost__gt=0).count()
    assert Transaction.objects.filter(kind="settlement").count() == charged
    assert Hold.objects.filter(status="settled").count() == settled.count()
    for token in ApiToken.objects.all():
        assert token.held == 0
        assert token.used == (Generation.objects.filter(token=token).aggregate(s=Sum("final_cost"))["s"] or 0)
        if token.quota is not None:
            assert token.used <= token.quota
    for user in users:
        account = Account.objects.get(user=user, kind="main")
        spent = Generation.objects.filter(user=user).aggregate(s=Sum("final_cost"))["s"] or 0
        assert account.held == 0
        assert account.balance == initial[user.pk] - spent >= 0
        assert account.request_count == settled.filter(user=user).count()
    assert ledger_problems() == []


def test_2000_holds_and_reports_from_threads_settle_exactly_once(celery_worker, gateway):
    users, tokens = _setup(gateway)
    initial = {u.pk: Account.objects.get(user=u, kind="main").balance for u in users}
    outcomes = {"held": 0, "insufficient": 0, "debt": 0, "quota": 0, "reported": 0, "unreported": 0, "failed": 0}
    lock = threading.Lock()
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for _ in range(REQUESTS // THREADS):
                _, raw = rng.choice(tokens)
                inp, max_out = rng.randint(100, 4000), rng.randint(100, 2000)
                try:
                    gen = metering_hold(gateway=gateway, token_key=raw, model_name="gpt-4o",
                                        endpoint="/v1/chat/completions", input_tokens=inp, max_output_tokens=max_out)
                except InsufficientBalance:
                    key = "insufficient"
                except AccountInDebt:
                    key = "debt"
                except TokenQuotaExceeded:
                    key = "quota"
                else:
                    roll = rng.random()
                    if roll < 0.05:
                        key = "unreported"  # the gateway died: the sweeper must release it
                    else:
                        outcome = "failed" if roll < 0.15 else "succeeded"
                        usage = Usage(input_tokens=inp, output_tokens=rng.randint(0, max_out), cached_tokens=rng.randint(0, inp))
                        for _ in range(2 if roll > 0.9 else 1):  # some gateways report twice
                            metering_report(gateway=gateway, public_id=gen.public_id, outcome=outcome, usage=usage)
                        key = "failed" if outcome == "failed" else "reported"
                with lock:
                    outcomes[key] += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(outcomes.values()) == REQUESTS
    # The limits were really exercised.
    assert outcomes["insufficient"] + outcomes["debt"] > 0 and outcomes["quota"] > 0 and outcomes["reported"] > 500

    _wait_until_settled()
    swept = metering_sweep(now=timezone.now() + timezone.timedelta(hours=1))
    assert swept["expired"] == outcomes["unreported"]
    assert Generation.objects.filter(state="released").count() == outcomes["failed"]
    _assert_books_balance(users, initial)


def test_worker_killed_mid_run_loses_nothing_and_charges_nothing_twice(celery_worker, gateway):
    users, tokens = _setup(gateway)
    initial = {u.pk: Account.objects.get(user=u, kind="main").balance for u in users}
    rich_tokens = [raw for pk, raw in tokens if ApiToken.objects.get(pk=pk).quota is None
                   and ApiToken.objects.get(pk=pk).user.pk in [u.pk for u in users[3:]]]
    rng = random.Random(7)
    for _ in range(400):
        gen = metering_hold(gateway=gateway, token_key=rng.choice(rich_tokens), model_name="gpt-4o-mini",
                            endpoint="/v1/chat/completions", input_tokens=1000, max_output_tokens=1000)
        metering_report(gateway=gateway, public_id=gen.public_id, outcome="succeeded",
                        usage=Usage(input_tokens=1000, output_tokens=rng.randint(0, 1000)))

    deadline = time.monotonic() + 60
    while Generation.objects.filter(state="settled").count() < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    celery_worker.kill()
    at_kill = Generation.objects.filter(state="settled").count()
    assert 0 < at_kill < 400, "the kill should land mid-run"

    celery_worker.start()  # a new worker takes the rest of the queue
    # Messages the dead worker had reserved are not redelivered until the broker's visibility timeout;
    # the sweeper finds their reports instead.
    deadline = time.monotonic() + 120
    while Generation.objects.filter(state="reported").exists() and time.monotonic() < deadline:
        metering_sweep(now=timezone.now() + timezone.timedelta(minutes=5))
        time.sleep(0.5)
    assert Generation.objects.filter(state="settled").count() == 400
    _assert_books_balance(users, initial)

"""The daily usage rollup that settlement keeps (billing_usageday): it always equals a GROUP BY over the
settled generations and the ledger's settlement postings, through the PostgreSQL batch path and the
portable ORM path, after any mix of outcomes, days and settlement modes, and under concurrent workers."""

import threading
from collections import defaultdict
from datetime import UTC, timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Generation, UsageDay
from billing.services.metering import generation_settle, generations_settle_batch, metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from tests.factories import make_user
from wallet.models import Entry, Transaction
from wallet.selectors.ledger import ledger_problems


@pytest.fixture(params=["postgresql-sql", "portable-orm"])
def implementation(request, monkeypatch):
    import billing.services.metering

    monkeypatch.setattr(billing.services.metering, "FORCE_PORTABLE", request.param == "portable-orm")
    return request.param


def rollup() -> dict:
    return {(r.user_id, r.day, r.model_id): (r.cost, r.requests) for r in UsageDay.objects.all() if r.cost or r.requests}


def rollup_entry_bounds() -> dict:
    return {(r.user_id, r.day, r.model_id): (r.first_entry_id, r.last_entry_id) for r in UsageDay.objects.all()}


def settlement_entry_bounds() -> dict:
    """The lowest and highest id of each (user, day, model)'s settlement entries on the user's account."""
    ids: dict = defaultdict(list)
    for g in Generation.objects.filter(state="settled").select_related("hold__settlement"):
        txn = g.hold.settlement
        when = txn.created_at if txn else g.closed_at
        key = (g.user_id, when.astimezone(UTC).date(), g.model_id)
        ids[key] += list(Entry.objects.filter(transaction=txn, account_id=g.hold.account_id).values_list("pk", flat=True)) if txn else []
    return {k: (min(v), max(v)) if v else (None, None) for k, v in ids.items()}


def group_by_settled_generations() -> dict:
    """What the rollup must be: settled generations grouped by user, UTC day of their settlement posting
    (of their close, for a free request) and model."""
    expected: dict = defaultdict(lambda: [0, 0])
    for g in Generation.objects.filter(state="settled").select_related("hold__settlement"):
        when = g.hold.settlement.created_at if g.hold.settlement else g.closed_at
        row = expected[(g.user_id, when.astimezone(UTC).date(), g.model_id)]
        row[0] += g.final_cost
        row[1] += 1
    return {k: tuple(v) for k, v in expected.items()}


def settlement_postings_per_user_day() -> dict:
    """The ledger's side: what settlement postings took from each user's main account per UTC day."""
    totals: dict = defaultdict(int)
    for e in Entry.objects.filter(transaction__kind=Transaction.Kind.SETTLEMENT, account__kind="main").select_related(
        "transaction", "account"
    ):
        totals[(e.account.user_id, e.transaction.created_at.astimezone(UTC).date())] -= e.amount
    return dict(totals)


def assert_rollup_exact():
    got = rollup()
    assert got == group_by_settled_generations()
    assert rollup_entry_bounds() == settlement_entry_bounds()
    per_day: dict = defaultdict(int)
    for (user_id, day, _), (cost, _) in got.items():
        if cost:
            per_day[(user_id, day)] += cost
    assert dict(per_day) == settlement_postings_per_user_day()


def shifted_clock(days: int):
    """Settle as if `days` later (the rollup's day comes from the settlement's clock)."""
    real = timezone.now
    return mock.patch("django.utils.timezone.now", lambda: real() + timedelta(days=days))


MODELS = ["gpt-4o", "gpt-4o-mini"]

request_st = st.fixed_dictionaries({
    "user": st.integers(0, 2),
    "model": st.sampled_from(MODELS),
    "outcome": st.sampled_from(["usage", "estimate", "free", "failed", "expired", "late"]),
    "tokens": st.integers(1, 5000),
    "day": st.integers(0, 3),
    "batch": st.booleans(),
})


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests=st.lists(request_st, min_size=1, max_size=12))
def test_rollup_equals_a_group_by_over_settled_generations(implementation, gateway, make_token, requests):
    users = [make_user(balance="50") for _ in range(3)]
    tokens = [make_token(u) for u in users]
    for r in requests:
        token = tokens[r["user"]]
        g = metering_hold(gateway=gateway, token_key=token.raw_key, model_name=r["model"], endpoint="/v1/chat/completions",
                          input_tokens=r["tokens"], max_output_tokens=100)
        if r["outcome"] in ("expired", "late"):
            metering_sweep(now=timezone.now() + timedelta(hours=2))
            if r["outcome"] == "expired":
                continue
        usage = {"usage": Usage(input_tokens=r["tokens"], output_tokens=50), "estimate": None, "free": Usage(),
                 "failed": None, "late": Usage(input_tokens=r["tokens"], output_tokens=10)}[r["outcome"]]
        metering_report(gateway=gateway, public_id=g.public_id,
                        outcome="failed" if r["outcome"] == "failed" else "succeeded", usage=usage)
        with shifted_clock(r["day"]):
            if r["batch"]:
                generations_settle_batch()
            else:
                generation_settle(generation_id=g.pk, fetch=False)
        assert_rollup_exact()
    with shifted_clock(0):
        generations_settle_batch()
    assert_rollup_exact()
    before = rollup()
    call_command("rollup_rebuild", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert rollup() == before
    assert_rollup_exact()
    assert ledger_problems() == []


@pytest.mark.django_db
def test_a_batch_is_one_upsert_statement(gateway, make_token):
    users = [make_user(balance="50") for _ in range(3)]
    for u in users:
        token = make_token(u)
        for model in MODELS:
            g = metering_hold(gateway=gateway, token_key=token.raw_key, model_name=model, endpoint="/v1/chat/completions",
                              input_tokens=100, max_output_tokens=100)
            metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(input_tokens=100, output_tokens=10))
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert generations_settle_batch() == 6
    upserts = [q["sql"] for q in queries.captured_queries if "billing_usageday" in q["sql"]]
    assert len(upserts) == 1 and "ON CONFLICT" in upserts[0]
    assert len(rollup()) == 6
    assert_rollup_exact()


@pytest.mark.django_db
def test_rebuild_recomputes_a_damaged_rollup(gateway, make_token):
    user = make_user(balance="50")
    token = make_token(user)
    for _ in range(3):
        g = metering_hold(gateway=gateway, token_key=token.raw_key, model_name="gpt-4o", endpoint="/v1/chat/completions",
                          input_tokens=1000, max_output_tokens=100)
        metering_report(gateway=gateway, public_id=g.public_id, outcome="succeeded", usage=Usage(input_tokens=1000, output_tokens=5))
    generations_settle_batch()
    good = rollup()
    UsageDay.objects.update(cost=1, requests=99, first_entry_id=None)
    call_command("rollup_rebuild", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert rollup() == good
    assert_rollup_exact()


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlement_keeps_the_rollup_exact(catalog):
    """Four workers settle batches and single generations at once for the same users, days and models:
    the upserts serialise behind the account locks, nothing is lost or counted twice."""
    from billing.models import TokenGroup
    from billing.services.tokens import gateway_key_create, token_create

    gateway, _ = gateway_key_create(name="rollup-race")
    group = TokenGroup.objects.get(name="default")
    users = [make_user(balance="100") for _ in range(4)]
    raws = [token_create(user=u, name="t", group=group)[1] for u in users]
    generations = []
    for i in range(240):
        g = metering_hold(gateway=gateway, token_key=raws[i % 4], model_name=MODELS[i % 2], endpoint="/v1/chat/completions",
                          input_tokens=100 + i, max_output_tokens=100)
        metering_report(gateway=gateway, public_id=g.public_id, outcome="failed" if i % 11 == 0 else "succeeded",
                        usage=Usage(input_tokens=100 + i, output_tokens=i % 50))
        generations.append(g.pk)
    errors = []

    def worker(n):
        try:
            if n % 2:
                while generations_settle_batch(limit=7):
                    pass
            else:
                for pk in generations[n::4]:
                    generation_settle(generation_id=pk, fetch=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not Generation.objects.filter(state="reported").exists()
    assert_rollup_exact()
    assert sum(r for _, r in rollup().values()) == Generation.objects.filter(state="settled").count() == 240 - 22
    assert sum(c for c, _ in rollup().values()) == sum(Generation.objects.filter(state="settled").values_list("final_cost", flat=True))
    assert ledger_problems() == []

"""Metering through the service layer: hold, report, settle, release, expire, and every refusal."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import ApiToken, Generation, ModelPrice
from billing.services.metering import (
    TokenQuotaExceeded,
    generation_settle,
    metering_hold,
    metering_report,
    metering_sweep,
)
from billing.services.metering.pricing import Usage
from billing.services.tokens import token_update
from synstar.accounts.services import user_status_set
from synstar.errors import AccountInDebt, AuthenticationFailed, InsufficientBalance, InvalidRequest, PermissionDenied
from synstar.money import usd
from tests.factories import make_user
from wallet.models import Hold, Transaction
from wallet.selectors.ledger import wallet_statistics

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["postgresql-sql", "portable-orm"])
def implementation(request, monkeypatch):
    """Every scenario runs through the PostgreSQL hot path and through the portable ORM version that
    SQLite (the quickstart) uses, so the two cannot drift apart."""
    import billing.services.metering

    monkeypatch.setattr(billing.services.metering, "FORCE_PORTABLE", request.param == "portable-orm")
    return request.param

# gpt-4o: $2.50 in / $10 out per M. 1,000 in + 500 out = $0.0075 estimate.
EST = usd("0.0075")


def hold(gateway, token, **kwargs):
    params = {"model_name": "gpt-4o", "endpoint": "/v1/chat/completions", "input_tokens": 1000, "max_output_tokens": 500}
    params.update(kwargs)
    return metering_hold(gateway=gateway, token_key=token.raw_key, **params)


def report_and_settle(gateway, generation, outcome="succeeded", usage=None, error=""):
    metering_report(gateway=gateway, public_id=generation.public_id, outcome=outcome, usage=usage, error=error)
    return generation_settle(generation_id=generation.pk)


def test_hold_freezes_the_estimate_on_account_and_token(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user, quota=usd("5"))
    generation = hold(gateway, token)
    assert generation.public_id.startswith("gen-") and generation.state == "held"
    assert generation.estimated_cost == EST and generation.rate == 1
    s = wallet_statistics(user=user)
    assert (s.held, s.available) == (EST, usd("10") - EST)
    assert ApiToken.objects.get(pk=token.pk).held == EST
    assert Generation.objects.get(pk=generation.pk).token_held


def test_a_token_without_quota_or_budget_is_not_locked_per_request_and_still_counts_its_usage(gateway, make_token):
    """A hot token with no limits is not the next hot row: its hold writes nothing on the token; settlement
    counts its usage (and when it was last used) once per batch, and its held never goes below zero."""
    user = make_user(balance="9.50")
    token = make_token(user)
    before = ApiToken.objects.get(pk=token.pk)
    generation = hold(gateway, token)
    after_hold = ApiToken.objects.get(pk=token.pk)
    assert (after_hold.held, after_hold.used, after_hold.last_used_at) == (0, 0, before.last_used_at)
    assert not Generation.objects.get(pk=generation.pk).token_held
    assert wallet_statistics(user=user).held == EST  # the account still holds it
    # A quota set while the request is in flight: its settlement lifts nothing it did not hold.
    ApiToken.objects.filter(pk=token.pk).update(quota=usd("5"))
    settled = report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=100))
    token.refresh_from_db()
    assert (token.held, token.used) == (0, settled.final_cost) and token.last_used_at is not None
    limited = hold(gateway, token)  # now limited: held on the token
    assert ApiToken.objects.get(pk=token.pk).held == EST and Generation.objects.get(pk=limited.pk).token_held


def test_report_then_settle_charges_real_usage_and_updates_everything(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    generation = hold(gateway, token)
    metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded",
                    usage=Usage(input_tokens=1000, output_tokens=200, cached_tokens=400))
    assert Generation.objects.get(pk=generation.pk).state == "reported"
    assert wallet_statistics(user=user).held == EST  # not settled until the worker runs
    settled = generation_settle(generation_id=generation.pk)
    # 600 x 2.5 + 400 x 1.25 + 200 x 10 = 4,000 nanos-per-M units -> $0.004
    assert (settled.state, settled.final_cost, settled.charge_basis) == ("settled", usd("0.004"), "reported")
    s = wallet_statistics(user=user)
    assert (s.balance, s.held, s.consumed, s.request_count) == (usd("10") - usd("0.004"), 0, usd("0.004"), 1)
    t = ApiToken.objects.get(pk=token.pk)
    assert (t.used, t.held) == (usd("0.004"), 0)


def test_group_rate_applies(gateway, make_token):
    user = make_user(balance="9.50")
    from billing.models import TokenGroup

    TokenGroup.objects.get(name="discount").allowed_users.add(user)
    token = make_token(user, group="discount")
    generation = hold(gateway, token)
    assert generation.estimated_cost == usd("0.00225") and generation.group_name == "discount"
    settled = report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=500))
    assert settled.final_cost == usd("0.00225")


def test_failed_request_is_released_without_charge(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    generation = report_and_settle(gateway, hold(gateway, token), outcome="failed", error="upstream 503")
    assert (generation.state, generation.final_cost, generation.error) == ("released", 0, "upstream 503")
    s = wallet_statistics(user=user)
    assert (s.balance, s.held, s.request_count) == (usd("10"), 0, 0)
    assert ApiToken.objects.get(pk=token.pk).held == 0


def test_success_without_usage_is_charged_the_estimate(gateway, make_token):
    user = make_user(balance="9.50")
    generation = report_and_settle(gateway, hold(gateway, make_token(user)))
    assert (generation.final_cost, generation.charge_basis) == (EST, "estimate")


def test_reports_twice_and_settles_twice_change_nothing_twice(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    generation = hold(gateway, token)
    report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=100))
    again = report_and_settle(gateway, generation, outcome="failed", usage=Usage(input_tokens=1, output_tokens=1))
    assert (again.state, again.final_cost, again.outcome) == ("settled", usd("0.0035"), "succeeded")
    assert Transaction.objects.filter(kind="settlement").count() == 1
    assert wallet_statistics(user=user).request_count == 1


def test_overdue_hold_expires_and_a_late_report_still_settles_once(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    generation = hold(gateway, token)
    assert metering_sweep(now=timezone.now() + timedelta(hours=1)) == {"expired": 1, "settled": 0, "leases": 0}
    generation.refresh_from_db()
    assert generation.state == "expired" and Hold.objects.get(pk=generation.hold_id).status == "expired"
    assert wallet_statistics(user=user).held == 0 and ApiToken.objects.get(pk=token.pk).held == 0

    late = report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=500))
    assert (late.state, late.final_cost) == ("settled", EST)
    report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=500))
    s = wallet_statistics(user=user)
    assert (s.balance, s.held, s.request_count) == (usd("10") - EST, 0, 1)
    t = ApiToken.objects.get(pk=token.pk)
    assert (t.used, t.held) == (EST, 0)


def test_sweeper_settles_a_report_whose_task_was_lost(gateway, make_token):
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user))
    metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded", usage=Usage(input_tokens=10))
    assert metering_sweep() == {"expired": 0, "settled": 0, "leases": 0}  # too recent: the task may still come
    assert metering_sweep(now=timezone.now() + timedelta(minutes=5)) == {"expired": 0, "settled": 1, "leases": 0}
    assert Generation.objects.get(pk=generation.pk).state == "settled"


def test_gateway_retry_with_the_same_request_id_returns_the_first_hold(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    first = hold(gateway, token, request_id="req-1")
    second = hold(gateway, token, request_id="req-1")
    assert first.pk == second.pk
    assert wallet_statistics(user=user).held == EST


def test_per_unit_and_per_request_models(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    image = hold(gateway, token, model_name="dall-e-3", input_tokens=0, max_output_tokens=0, units=Decimal(3))
    assert image.estimated_cost == usd("0.12")
    assert report_and_settle(gateway, image, usage=Usage(units=Decimal(2))).final_cost == usd("0.08")
    song = hold(gateway, token, model_name="suno-v4", input_tokens=0, max_output_tokens=0)
    assert report_and_settle(gateway, song).final_cost == usd("0.10")


def test_price_change_during_a_request_does_not_change_its_cost(gateway, make_token):
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user))
    ModelPrice.objects.filter(name="gpt-4o").update(output_per_million=usd("1000"))
    assert report_and_settle(gateway, generation, usage=Usage(input_tokens=1000, output_tokens=500)).final_cost == EST


def test_settlement_above_the_estimate_can_put_the_account_in_debt(gateway, make_token):
    user = make_user()  # $0.50
    token = make_token(user)
    generation = hold(gateway, token, input_tokens=100, max_output_tokens=40_000)  # $0.40025
    settled = report_and_settle(gateway, generation, usage=Usage(input_tokens=100, output_tokens=80_000))
    assert settled.final_cost == usd("0.80025")
    assert wallet_statistics(user=user).balance == usd("0.50") - usd("0.80025")
    with pytest.raises(AccountInDebt) as info:
        hold(gateway, token, input_tokens=1, max_output_tokens=1)
    assert info.value.status == 402


# --- refusals: each with its reason, and nothing written ------------------------------------------


def _nothing_written(before):
    assert (Generation.objects.count(), Hold.objects.count(), Transaction.objects.count()) == before


def _counts():
    return Generation.objects.count(), Hold.objects.count(), Transaction.objects.count()


def test_insufficient_balance_says_what_is_available(gateway, make_token):
    user = make_user()  # $0.50
    token = make_token(user)
    before = _counts()
    with pytest.raises(InsufficientBalance) as info:
        hold(gateway, token, input_tokens=1000, max_output_tokens=100_000)  # $1.0025
    assert (info.value.status, info.value.extra["available"]) == (402, "0.50")
    _nothing_written(before)
    assert wallet_statistics(user=user).held == 0


def test_token_quota_reached_is_refused_and_the_account_hold_rolls_back(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user, quota=usd("0.01"))
    hold(gateway, token)  # 0.0075 of 0.01
    before = _counts()
    with pytest.raises(TokenQuotaExceeded) as info:
        hold(gateway, token)
    assert (info.value.status, info.value.code, info.value.extra["quota_remaining"]) == (402, "token_quota_exceeded", "0.0025")
    _nothing_written(before)
    assert wallet_statistics(user=user).held == EST


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda t, u: token_update(token_id=t.pk, user=u, is_enabled=False), "token_disabled"),
        (lambda t, u: ApiToken.objects.filter(pk=t.pk).update(expires_at=timezone.now() - timedelta(seconds=1)), "token_expired"),
        (lambda t, u: token_update(token_id=t.pk, user=u, allowed_models=["gpt-4o-mini"]), "model_not_allowed"),
        (lambda t, u: token_update(token_id=t.pk, user=u, allowed_ips=["10.0.0.0/8"]), "ip_not_allowed"),
        (lambda t, u: user_status_set(user=u, status="under_review", review_reason="payment", note="chargeback", actor=None), "account_under_review"),
        (lambda t, u: user_status_set(user=u, status="suspended", note="abuse", actor=None), "account_suspended"),
    ],
)
def test_forbidden_requests_say_why_and_write_nothing(gateway, make_token, setup, code):
    user = make_user(balance="9.50")
    token = make_token(user)
    setup(token, user)
    before = _counts()
    with pytest.raises(PermissionDenied) as info:
        hold(gateway, token, client_ip="192.168.0.10")
    assert (info.value.status, info.value.code) == (403, code)
    if code == "account_under_review":
        assert "payment review" in info.value.message
    _nothing_written(before)
    assert wallet_statistics(user=user).held == 0


def test_ip_allow_list_admits_listed_addresses(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    token_update(token_id=token.pk, user=user, allowed_ips=["10.0.0.0/8"])
    assert hold(gateway, token, client_ip="10.1.2.3").state == "held"


def test_unknown_model_and_bad_keys(gateway, make_token):
    user = make_user(balance="9.50")
    token = make_token(user)
    before = _counts()
    with pytest.raises(InvalidRequest) as info:
        hold(gateway, token, model_name="gpt-9")
    assert info.value.code == "model_not_found"
    with pytest.raises(AuthenticationFailed) as info:
        metering_hold(gateway=gateway, token_key=gateway.raw_key, model_name="gpt-4o", endpoint="/x")
    assert info.value.code == "wrong_key_type"
    with pytest.raises(AuthenticationFailed) as info:
        metering_hold(gateway=gateway, token_key="sk-" + "x" * 40, model_name="gpt-4o", endpoint="/x")
    assert info.value.code == "invalid_api_key"
    _nothing_written(before)


@pytest.mark.parametrize(
    "kwargs",
    [{"input_tokens": -1}, {"max_output_tokens": 10**12}, {"units": Decimal("-2")}, {"input_tokens": "12"}],
)
def test_absurd_estimates_are_refused(gateway, make_token, kwargs):
    user = make_user(balance="9.50")
    before = _counts()
    with pytest.raises(InvalidRequest):
        hold(gateway, make_token(user), **kwargs)
    _nothing_written(before)


def test_report_refuses_bad_usage_and_unknown_generation(gateway, make_token):
    user = make_user(balance="9.50")
    generation = hold(gateway, make_token(user))
    with pytest.raises(InvalidRequest):
        metering_report(gateway=gateway, public_id=generation.public_id, outcome="succeeded",
                        usage=Usage(input_tokens=5, cached_tokens=6))
    with pytest.raises(InvalidRequest):
        metering_report(gateway=gateway, public_id=generation.public_id, outcome="maybe")
    from synstar.errors import NotFound

    with pytest.raises(NotFound):
        metering_report(gateway=gateway, public_id="gen-nope", outcome="succeeded")
    assert Generation.objects.get(pk=generation.pk).state == "held"


def test_batch_settlement_matches_one_by_one_settlement(gateway, make_token):
    """The worker's batch path: every outcome in one batch, each closed exactly as alone, books balanced."""
    from billing.services.metering import generations_settle_batch

    user = make_user(balance="9.50")
    token, other = make_token(user), make_token(user, name="other", quota=usd("1"))
    ok = hold(gateway, token)
    failed = hold(gateway, token)
    estimate_only = hold(gateway, other)
    free = hold(gateway, other)
    late = hold(gateway, token)
    metering_sweep(now=timezone.now() + timedelta(hours=1))  # all five expire...
    fresh = hold(gateway, token)  # ...but this one is new and still held
    metering_report(gateway=gateway, public_id=ok.public_id, outcome="succeeded", usage=Usage(input_tokens=1000, output_tokens=100))
    metering_report(gateway=gateway, public_id=failed.public_id, outcome="failed", error="502")
    metering_report(gateway=gateway, public_id=estimate_only.public_id, outcome="succeeded")
    metering_report(gateway=gateway, public_id=free.public_id, outcome="succeeded", usage=Usage())
    metering_report(gateway=gateway, public_id=fresh.public_id, outcome="succeeded", usage=Usage(input_tokens=1000, output_tokens=500))
    assert generations_settle_batch(limit=2) == 5  # several batches, until none is left
    assert generations_settle_batch() == 0
    states = {g.public_id: (g.state, g.final_cost, g.charge_basis) for g in Generation.objects.all()}
    assert states[ok.public_id] == ("settled", usd("0.0035"), "reported")
    assert states[failed.public_id] == ("released", 0, "")
    assert states[estimate_only.public_id] == ("settled", EST, "estimate")
    assert states[free.public_id] == ("settled", 0, "reported")
    assert states[late.public_id][0] == "expired"
    assert states[fresh.public_id] == ("settled", EST, "reported")
    spent = usd("0.0035") + EST + EST
    s = wallet_statistics(user=user)
    assert (s.balance, s.held, s.consumed, s.request_count) == (usd("10") - spent, 0, spent, 4)
    t1, t2 = ApiToken.objects.get(pk=token.pk), ApiToken.objects.get(pk=other.pk)
    assert (t1.used, t1.held, t2.used, t2.held) == (usd("0.0035") + EST, 0, EST, 0)
    assert Transaction.objects.filter(kind="settlement").count() == 3
    assert Hold.objects.get(pk=failed.hold_id).status == "expired"  # lifted by the sweeper, left as it was

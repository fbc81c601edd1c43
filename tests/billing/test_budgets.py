"""Token budgets per day / week / month and requests per minute, through the metering hot path (the
PostgreSQL SQL and its ORM twin), the hold API and real threads."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import billing.services.metering
from billing.models import ApiToken, Generation
from billing.selectors.budgets import next_reset, period_start
from billing.services.budgets import TokenBudgetExceeded, TokenRateLimited
from billing.services.metering import TokenQuotaExceeded, generations_settle_batch
from billing.services.tokens import token_update
from synstar.errors import InvalidRequest
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from tests.metering import meter_hold, meter_ready, meter_release, meter_settle


def _token(user) -> ApiToken:
    meter_ready(user)
    return ApiToken.objects.get(user=user, name="ledger-test")


@pytest.fixture(params=["postgresql-sql", "portable-orm"])
def path(request, monkeypatch):
    monkeypatch.setattr(billing.services.metering, "FORCE_PORTABLE", request.param == "portable-orm")
    return request.param


# --- the period's bounds ---------------------------------------------------------------------------


def test_periods_start_at_midnight_utc_on_mondays_and_the_first():
    now = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)  # a Saturday
    assert period_start(period="day", now=now) == datetime(2026, 11, 28, tzinfo=UTC)
    assert period_start(period="week", now=now) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start(period="month", now=now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert next_reset(period="day", now=now) == datetime(2026, 11, 29, tzinfo=UTC)
    assert next_reset(period="week", now=now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert next_reset(period="month", now=now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_reset(period="month", now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
@hsettings(max_examples=60, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
    period=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Pacific/Chatham"]),
)
def test_the_sql_and_python_period_starts_agree(moment, period, zone):
    from django.test import override_settings

    with override_settings(TOKEN_BUDGET_TIME_ZONE=zone), connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc(%s, %s AT TIME ZONE %s) AT TIME ZONE %s", [period, moment, zone, zone])
        (sql_start,) = cursor.fetchone()
        python_start = period_start(period=period, now=moment)
    assert sql_start == python_start
    assert python_start <= moment < next_reset(period=period, now=moment)
    assert python_start.astimezone(ZoneInfo(zone)).hour == 0


# --- enforcement -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_daily_budget_refuses_with_402_and_the_reset_time(path):
    user = make_user(balance="20")
    token = _token(user)
    token_update(token_id=token.pk, user=user, budget=usd("0.05"), budget_period="day")
    g = meter_hold(user, usd("0.03"))
    meter_settle(g, usd("0.03"))
    token.refresh_from_db()
    assert token.period_used == usd("0.03") and token.period_start == period_start(period="day", now=timezone.now())
    meter_hold(user, usd("0.02"))  # exactly the rest fits (it stays held)
    with pytest.raises(TokenBudgetExceeded) as refused:
        meter_hold(user, usd("0.001"))
    error = refused.value
    assert error.status == 402 and error.code == "token_budget_exceeded"
    resets = next_reset(period="day", now=timezone.now()).isoformat()
    assert error.extra["resets_at"] == resets and resets in error.message
    assert "daily" in error.message or "day" in error.message


@pytest.mark.django_db
def test_a_new_period_starts_from_zero_and_settlement_counts_into_it(path):
    user = make_user(balance="20")
    token = _token(user)
    token_update(token_id=token.pk, user=user, budget=usd("0.05"), budget_period="day")
    # Yesterday's period used it all up.
    ApiToken.objects.filter(pk=token.pk).update(
        period_used=usd("0.05"), period_start=period_start(period="day", now=timezone.now() - timedelta(days=1))
    )
    g = meter_hold(user, usd("0.04"))  # today's budget is whole again
    meter_settle(g, usd("0.01"))
    token.refresh_from_db()
    assert token.period_used == usd("0.01")  # rolled over by the settlement, then counted
    assert token.period_start == period_start(period="day", now=timezone.now())
    assert token.used == usd("0.01")


@pytest.mark.django_db
def test_a_released_hold_gives_the_budget_back_and_the_quota_still_applies(path):
    user = make_user(balance="20")
    token = _token(user)
    token_update(token_id=token.pk, user=user, budget=usd("0.05"), budget_period="week", quota=usd("0.08"))
    g = meter_hold(user, usd("0.05"))
    with pytest.raises(TokenBudgetExceeded):
        meter_hold(user, usd("0.01"))
    meter_release(g)
    meter_settle(meter_hold(user, usd("0.05")), usd("0.05"))
    token.refresh_from_db()
    assert token.period_used == usd("0.05")
    # Next week: the budget is whole again, but the lifetime quota ($0.08, $0.05 used) refuses first.
    ApiToken.objects.filter(pk=token.pk).update(period_start=token.period_start - timedelta(days=7))
    with pytest.raises(TokenQuotaExceeded):
        meter_hold(user, usd("0.04"))
    meter_settle(meter_hold(user, usd("0.03")), usd("0.03"))


@pytest.mark.django_db
def test_bad_budget_settings_are_refused_and_change_nothing():
    user = make_user()
    token = _token(user)
    for kwargs in ({"budget": -1}, {"budget_period": "year"}, {"rpm_limit": -5}):
        with pytest.raises(InvalidRequest):
            token_update(token_id=token.pk, user=user, **kwargs)
    token.refresh_from_db()
    assert token.budget is None and token.budget_period == "month" and token.rpm_limit is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_never_spend_past_the_budget():
    """20 threads race for a $0.06 daily budget in $0.01 holds (the account could pay for all of them): exactly
    six are held; after settlement the period's used is the budget, never more."""
    user = make_user(balance="20")
    token = _token(user)
    token_update(token_id=token.pk, user=user, budget=usd("0.06"), budget_period="day")

    def hold(_):
        return meter_hold(user, usd("0.01"))

    held, errors = run_concurrently(hold, [(i,) for i in range(20)])
    assert len(held) == 6
    assert len(errors) == 14 and all(isinstance(e, TokenBudgetExceeded) for e in errors), errors[:3]
    token.refresh_from_db()
    assert token.held == usd("0.06")
    for g in held:
        billing.services.metering.metering_report(
            gateway=g.gateway, public_id=g.public_id, outcome="succeeded",
            usage=billing.services.metering.pricing.Usage(units=g.est_units),
        )
    generations_settle_batch()
    token.refresh_from_db()
    assert token.held == 0 and token.period_used == usd("0.06") == token.used
    assert Generation.objects.filter(token=token, state="settled").count() == 6


# --- requests per minute -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_requests_per_minute_are_refused_with_429_and_retry_after(path):
    user = make_user(balance="20")
    token = _token(user)
    token_update(token_id=token.pk, user=user, rpm_limit=3)
    for _ in range(3):
        meter_release(meter_hold(user, usd("0.01")))
    with pytest.raises(TokenRateLimited) as refused:
        meter_hold(user, usd("0.01"))
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert Generation.objects.filter(token=token).count() == 3  # the refused request held nothing


@pytest.mark.django_db
def test_the_hold_api_answers_429_with_a_retry_after_header(client, gateway, make_token):
    user = make_user(balance="20")
    token = make_token(user, rpm_limit=1)
    body = {"token": token.raw_key, "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions", "input_tokens": 10,
            "max_output_tokens": 10}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {gateway.raw_key}"}
    first = client.post("/api/v1/metering/holds", body, content_type="application/json", **headers)
    assert first.status_code == 201, first.content
    second = client.post("/api/v1/metering/holds", body, content_type="application/json", **headers)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "token_rate_limited"
    assert 1 <= int(second["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_hold_api_answers_402_token_budget_exceeded(client, gateway, make_token):
    user = make_user(balance="20")
    token = make_token(user, budget=usd("0.000001"), budget_period="month")
    body = {"token": token.raw_key, "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions", "input_tokens": 10,
            "max_output_tokens": 10}
    answer = client.post("/api/v1/metering/holds", body, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {gateway.raw_key}")
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert error["code"] == "token_budget_exceeded"
    assert error["resets_at"] == next_reset(period="month", now=timezone.now()).isoformat()


@pytest.mark.django_db
def test_get_key_shows_the_budget_period_usage_and_the_next_reset(client, make_token):
    user = make_user(balance="20")
    token = make_token(user, budget=usd("2.50"), budget_period="week", rpm_limit=30, quota=usd("10"))
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(
        used=usd("1.25"), period_used=usd("0.75"), held=usd("0.25"), period_start=period_start(period="week", now=now)
    )
    body = client.get("/api/v1/key", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}").json()
    assert body["budget"] == "2.50" and body["budget_period"] == "week"
    assert body["period_used"] == "0.75" and body["budget_remaining"] == "1.50"  # 2.50 - 0.75 - 0.25 held
    assert body["remaining"] == "8.50" and body["rate_limit"] == {"requests": 30, "interval": "1m"}
    assert datetime.fromisoformat(body["next_reset"]) == next_reset(period="week", now=now)
    assert datetime.fromisoformat(body["period_start"]) == period_start(period="week", now=now)
    # Last week's usage does not count against this week's budget.
    ApiToken.objects.filter(pk=token.pk).update(period_start=period_start(period="week", now=now) - timedelta(days=7))
    body = client.get("/api/v1/key", HTTP_AUTHORIZATION=f"Bearer {token.raw_key}").json()
    assert body["period_used"] == "0.00" and body["budget_remaining"] == "2.25"


# --- a property: whatever the order of holds, charges, releases and period changes --------------------


@pytest.mark.django_db
@hsettings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("hold"), st.integers(1, 40)),  # cents
            st.tuples(st.just("settle"), st.integers(0, 100)),  # percent of the oldest open hold
            st.tuples(st.just("release"), st.just(0)),
            st.tuples(st.just("new_period"), st.just(0)),
        ),
        max_size=25,
    ),
    portable=st.booleans(),
)
def test_budget_is_never_exceeded_and_period_used_is_exact(steps, portable):
    """A $1.00 daily budget: held + the period's used never exceeds it; a hold is refused exactly when it
    would; period_used is what settled since the period began (a modelled rollover)."""
    billing.services.metering.FORCE_PORTABLE = portable
    try:
        user = make_user(balance="50")
        token = _token(user)
        token_update(token_id=token.pk, user=user, budget=usd("1"), budget_period="day")
        open_holds, period_used, held = [], 0, 0
        for action, n in steps:
            if action == "hold":
                amount = usd("0.01") * n
                fits = period_used + held + amount <= usd("1")
                try:
                    open_holds.append((meter_hold(user, amount), amount))
                    held += amount
                    assert fits
                except TokenBudgetExceeded:
                    assert not fits
            elif action == "settle" and open_holds:
                g, amount = open_holds.pop(0)
                cost = amount * n // 100
                meter_settle(g, cost)
                held -= amount
                period_used += cost
            elif action == "release" and open_holds:
                g, amount = open_holds.pop(0)
                meter_release(g)
                held -= amount
            elif action == "new_period":
                ApiToken.objects.filter(pk=token.pk, period_start__isnull=False).update(
                    period_start=period_start(period="day", now=timezone.now()) - timedelta(days=1)
                )
                period_used = 0
            token.refresh_from_db()
            current = token.period_used if token.period_start == period_start(period="day", now=timezone.now()) else 0
            assert (token.held, current) == (held, period_used)
            assert current + token.held <= usd("1")
    finally:
        billing.services.metering.FORCE_PORTABLE = False

"""The relay enforces a token's budget per period (402 token_budget_exceeded with the reset time) and its
requests per minute (429 with Retry-After), in OpenAI's error shape, holding nothing for the refusal."""

from __future__ import annotations

import httpx
import pytest

from billing.models import Generation
from synstar.money import usd
from tests.relay.conftest import main_account, settle_all, user_with_token

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


def _post(relay, key: str) -> httpx.Response:
    return httpx.post(relay.base + "/chat/completions", json=BODY, timeout=30, headers={"Authorization": f"Bearer {key}"})


def test_requests_per_minute_answer_429_with_retry_after(relay, upstreams):
    user, token, key = user_with_token("10", rpm_limit=2)
    assert _post(relay, key).status_code == 200
    assert _post(relay, key).status_code == 200
    refused = _post(relay, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "token_rate_limited" and "param" in refused.json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    settle_all()
    assert Generation.objects.filter(token=token).count() == 2
    assert main_account(user).held == 0


def test_a_spent_daily_budget_answers_402_with_the_reset_time(relay, upstreams):
    user, token, key = user_with_token("10", budget=usd("0.00001"), budget_period="day")
    refused = _post(relay, key)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "token_budget_exceeded" and error["resets_at"] in error["message"]
    assert not Generation.objects.filter(token=token).exists() and main_account(user).held == 0
    assert upstreams.a.requests == []

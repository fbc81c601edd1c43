"""Writes for token limits besides the lifetime quota: the per-period budget's refusal and the requests per
minute counter. The budget itself is enforced by the hold's conditional UPDATE (metering/sql.py BUDGET_OK)."""

from __future__ import annotations

import math
import time
from datetime import datetime

from django.core.cache import cache
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken
from billing.selectors.budgets import PERIOD_ADJECTIVES, token_budget
from synstar.errors import PaymentRequired, RateLimited
from synstar.i18n import lazy_format
from synstar.money import format_usd


class TokenBudgetExceeded(PaymentRequired):
    code = "token_budget_exceeded"
    default_message = "This API token has reached its budget for the period."


class TokenRateLimited(RateLimited):
    code = "token_rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


def budget_refusal(*, token_id: int, amount: int, now: datetime) -> TokenBudgetExceeded | None:
    """Why the token's hold was refused, if it was its budget: the 402 with the time of the next reset. None
    when the lifetime quota refuses it (re-read after the refusal: the quota is checked first, so a
    concurrent release cannot turn a budget refusal into a wrong quota message)."""
    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None or token.budget is None:
        return None
    if token.quota is not None and token.quota < token.used + token.held + amount:
        return None
    state = token_budget(token=token, now=now)
    resets = state.resets_at.isoformat()
    return TokenBudgetExceeded(
        # Lazy: read in the language of whoever renders the refusal (the relay answers from a thread pool).
        lazy_format(_("This API token has $%(left)s of its %(period)s budget of $%(budget)s left; the request needs up to "
                      "$%(need)s. The budget resets at %(resets)s."),
                    left=format_usd(state.remaining or 0, places=None), period=PERIOD_ADJECTIVES.get(token.budget_period, token.budget_period),
                    budget=format_usd(token.budget, places=None), need=format_usd(amount, places=None), resets=resets),
        budget_remaining=format_usd(state.remaining or 0, places=None),
        resets_at=resets,
    )


def token_rate_check(*, token_id: int, rpm_limit: int | None, now: float | None = None) -> None:
    """Count one request against the token's requests-per-minute limit: a fixed window per minute in the
    cache (an atomic INCR on Redis), shared by every process. Over the limit: 429 with Retry-After."""
    if not rpm_limit:
        return
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"token-rpm:{token_id}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr: start the window again
        cache.add(key, 1, timeout=120)
        count = 1
    if count > rpm_limit:
        retry_after = min(max(math.ceil((window + 1) * 60 - now), 1), 60)
        raise TokenRateLimited(
            lazy_format(_("This API token allows %(limit)s requests per minute; try again in %(seconds)s seconds."),
                        limit=rpm_limit, seconds=retry_after),
            retry_after=retry_after,
        )

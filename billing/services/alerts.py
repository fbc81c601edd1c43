"""Token alerts: an email at 80% and at 100% of a token's lifetime quota (once each) and of its budget
period (once each per period), and the `token.quota_reached` webhook event at 100%. Checked by the
settlement task after each batch, for the tokens in it; each alert is claimed by a compare-and-swap on the
token's alert columns, so concurrent checks send it once."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken
from billing.selectors.budgets import PERIOD_ADJECTIVES, token_budget
from synstar.i18n import lazy_format
from synstar.money import format_usd, parse_usd
from wallet.services.alerts import alert_email, balance_crossings, event_emit

logger = logging.getLogger(__name__)


def _level(used: int, limit: int) -> int:
    """100 once what is left cannot pay for the smallest request (METERING_MIN_HOLD_USD), 80 from 80% used."""
    smallest = parse_usd(settings.METERING_MIN_HOLD_USD, allow_zero=True, field="METERING_MIN_HOLD_USD")
    if used >= limit or limit - used < smallest:
        return 100
    if used * 10 >= limit * 8:
        return 80
    return 0


@transaction.atomic
def token_alerts_check(*, token_ids, now: datetime | None = None) -> int:
    """Send the 80% / 100% alerts these tokens have reached and not yet had. Returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    tokens = ApiToken.objects.select_related("user").filter(
        Q(quota__gt=0) | Q(budget__gt=0), pk__in=set(token_ids), deleted_at__isnull=True
    )
    for token in tokens:
        if token.quota:
            level = _level(token.used, token.quota)
            if level > token.alert_quota_level and ApiToken.objects.filter(
                pk=token.pk, alert_quota_level__lt=level
            ).update(alert_quota_level=level):
                _token_alert(token=token, kind="quota", level=level, used=token.used, limit=token.quota, resets_at=None)
                sent += 1
        if token.budget:
            state = token_budget(token=token, now=now)
            level = _level(state.period_used, token.budget)
            fresh = Q(alert_budget_period__isnull=True) | Q(alert_budget_period__lt=state.period_start) | Q(
                alert_budget_period=state.period_start, alert_budget_level__lt=level
            )
            if level and ApiToken.objects.filter(fresh, pk=token.pk).update(
                alert_budget_level=level, alert_budget_period=state.period_start
            ):
                _token_alert(token=token, kind="budget", level=level, used=state.period_used, limit=token.budget,
                             resets_at=state.resets_at)
                sent += 1
    return sent


def _token_alert(*, token: ApiToken, kind: str, level: int, used: int, limit: int, resets_at: datetime | None) -> None:
    # Lazy: the email is rendered in the account's language (wallet.services.alerts.alert_email).
    period = PERIOD_ADJECTIVES.get(token.budget_period, token.budget_period)
    if kind == "quota":
        subject = lazy_format(_("API token %(name)s has used %(level)s%% of its quota"), name=token.name, level=level)
    else:
        subject = lazy_format(_("API token %(name)s has used %(level)s%% of its %(period)s budget"),
                              name=token.name, level=level, period=period)
    alert_email(user=token.user, subject=subject, template="email/token_alert.txt", context={
        "token": token, "period": period, "kind": kind, "level": level, "used": format_usd(used), "limit": format_usd(limit),
        "resets_at": resets_at,
    })
    if level == 100:
        event_emit(user_id=token.user_id, event_type="token.quota_reached", data={
            "token": {"id": token.pk, "name": token.name, "prefix": token.key_prefix}, "limit_kind": kind,
            "budget_period": token.budget_period if kind == "budget" else None,
            "limit": format_usd(limit, places=None), "used": format_usd(used, places=None),
            "resets_at": resets_at.isoformat() if resets_at else None, "currency": "USD",
        })


def settlement_alerts(*, account_ids, token_ids) -> None:
    """After a settlement batch committed: the low-balance check for its accounts, the token alerts for its
    tokens. Never raises: alerts must not fail a settlement that is already done."""
    try:
        balance_crossings(account_ids=account_ids)
        token_alerts_check(token_ids=token_ids)
    except Exception:  # noqa: BLE001
        logger.exception("alerts after settlement failed (accounts %s)", sorted(set(account_ids))[:20])

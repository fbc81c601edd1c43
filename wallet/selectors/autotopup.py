"""Reads for auto top-up: the user's rule, saved card, what it charged today and its last attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from synstar.money import parse_usd
from wallet import providers
from wallet.models import AutoTopUp, PaymentMethod, TopUpOrder

NOT_CHARGED = (TopUpOrder.Status.FAILED, TopUpOrder.Status.CANCELLED)


def daily_cap_max() -> int:
    """AUTOTOPUP_DAILY_CAP_USD: the most auto top-up may charge a user per UTC day (and each user's default cap)."""
    return parse_usd(settings.AUTOTOPUP_DAILY_CAP_USD, allow_zero=True)


def card_method() -> PaymentMethod | None:
    """The payment method auto top-up orders are made with: Stripe card."""
    return PaymentMethod.objects.filter(provider=PaymentMethod.Provider.STRIPE, provider_method="card", is_enabled=True).first()


def autotopup_available() -> bool:
    """Auto top-up needs card payments through Stripe (the sandbox cannot save cards)."""
    return providers.configured("stripe") and card_method() is not None


def day_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def charged_today(*, user_id: int) -> int:
    """What auto top-ups charged or are charging since 00:00 UTC (failed and cancelled ones cost nothing)."""
    total = (TopUpOrder.objects.filter(user_id=user_id, source=TopUpOrder.Source.AUTO, created_at__gte=day_start())
             .exclude(status__in=NOT_CHARGED).aggregate(total=Sum("amount"))["total"])
    return total or 0


@dataclass(frozen=True)
class AutoTopUpOverview:
    setting: AutoTopUp
    available: bool  # card payments through Stripe are configured
    daily_cap_max: int
    charged_today: int
    attempts: list[TopUpOrder]


def autotopup_overview(*, user, attempts: int = 5) -> AutoTopUpOverview:
    cap_max = daily_cap_max()
    setting = AutoTopUp.objects.filter(user=user).first() or AutoTopUp(user=user, daily_cap=cap_max)
    recent = list(TopUpOrder.objects.filter(user=user, source=TopUpOrder.Source.AUTO).order_by("-id")[:attempts])
    return AutoTopUpOverview(setting=setting, available=autotopup_available(), daily_cap_max=cap_max,
                             charged_today=charged_today(user_id=user.pk), attempts=recent)

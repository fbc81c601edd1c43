"""Reads: a user's alert settings, whether their balance is below its alert threshold, their webhook log."""

from __future__ import annotations

from dataclasses import dataclass

from wallet.models import Account, AlertSettings, WebhookDelivery
from wallet.services.alerts import default_threshold


@dataclass(frozen=True)
class LowBalance:
    below: bool
    available: int
    threshold: int  # the effective one (the user's, or the default); 0 means off
    custom: bool  # the user set their own


def low_balance_state(*, user) -> LowBalance:
    account = Account.objects.filter(user=user, kind=Account.Kind.MAIN).only("balance", "held").first()
    row = AlertSettings.objects.filter(user=user).only("low_balance_threshold").first()
    custom = row is not None and row.low_balance_threshold is not None
    threshold = default_threshold() if row is None or row.low_balance_threshold is None else row.low_balance_threshold
    available = 0 if account is None else account.balance - account.held
    return LowBalance(below=threshold > 0 and available < threshold, available=available, threshold=threshold, custom=custom)


def alert_settings_for(*, user) -> AlertSettings | None:
    return AlertSettings.objects.filter(user=user).first()


def webhook_deliveries(*, user, limit: int = 50) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(user=user).order_by("-created_at", "-id")[:limit])

"""Alerts: the low-balance alert (once per crossing), alert emails, and customer webhooks (signed events
delivered with retries and logged).

Who calls what:
- `balance_crossings(account_ids=...)` after money moved: billing's settlement task (after each batch, for
  the accounts in it), and the top-up and refund hooks (a top-up re-arms the alert). Holds are covered by
  the settlement that follows each of them within seconds, so the hot path pays nothing for alerts. Other
  features that react to the available balance (auto top-up) register in `BALANCE_HOOKS` with
  `balance_hooks_register`; each hook gets the `BalanceState` of every account checked.
- `event_emit(...)` records a webhook delivery and queues it after commit (`wallet.tasks.webhook_deliver_task`,
  retried with exponential back-off). Billing emits `token.quota_reached` through it.

Signature (Stripe's scheme): `Synstar-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import BigIntegerField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from synstar.errors import InvalidRequest
from synstar.i18n import user_language
from synstar.money import format_usd, parse_usd
from wallet.models import Account, AlertSettings, WebhookDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Synstar-Signature"
EVENT_TYPES = ("balance.low", "token.quota_reached", "topup.completed", "refund.completed", "webhook.test")


# --- settings ---------------------------------------------------------------------------------------


def default_threshold() -> int:
    return parse_usd(settings.LOW_BALANCE_THRESHOLD_USD, allow_zero=True, field="LOW_BALANCE_THRESHOLD_USD")


def alert_settings_get(*, user) -> AlertSettings:
    """The user's alert settings row (created on first use; harmless under concurrency)."""
    row, _created = AlertSettings.objects.get_or_create(user=user)
    return row


def _check_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname  # raises ValueError on a malformed bracketed host ("https://[::1")
    except ValueError:
        hostname = None
    if hostname is None or parts.scheme not in ("https", "http") or len(url) > 500:
        raise InvalidRequest(_("The webhook URL must be an http(s) URL of at most 500 characters."), code="invalid_webhook_url")
    if parts.scheme == "http" and not settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        raise InvalidRequest(_("The webhook URL must use https."), code="invalid_webhook_url")
    return url


@transaction.atomic
def alert_settings_update(*, user, threshold: int | None, webhook_url: str, new_secret: bool = False) -> tuple[AlertSettings, str | None]:
    """Change the low-balance threshold (None: the default; 0: off) and the webhook URL. A webhook gets a
    signing secret when it has none or `new_secret` asks for one: returned once (None otherwise), never shown
    again. A new threshold takes effect at the next check; the crossing flag is re-evaluated then."""
    if threshold is not None and threshold < 0:
        raise InvalidRequest(_("The threshold must not be negative."), code="invalid_threshold")
    url = _check_url(webhook_url)
    row = AlertSettings.objects.select_for_update().filter(user=user).first() or alert_settings_get(user=user)
    secret = None
    if url and (new_secret or not row.webhook_secret):
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        row.webhook_secret = secret
    if not url:
        row.webhook_secret = ""
    row.low_balance_threshold, row.webhook_url = threshold, url
    row.save()
    return row, secret


# --- emails -----------------------------------------------------------------------------------------


def alert_email(*, user, subject: str | Promise, template: str, context: dict) -> None:
    """Send an alert email after the transaction commits (a failed send is logged, never raised)."""

    def send():
        try:
            with translation.override(user_language(user)):  # in the account's language (subject may be lazy)
                body = render_to_string(template, {"user": user, "site_url": settings.SITE_URL, **context})
                subject_text = str(subject)
            send_mail(f"[SynStar] {subject_text}", body, None, [user.email])
        except Exception:  # noqa: BLE001 - an alert email must not break the money path
            logger.exception("alert email %s to user %s failed", template, user.pk)

    transaction.on_commit(send)


# --- low balance ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceState:
    account_id: int
    user_id: int
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


BALANCE_HOOKS: list[Callable[..., object]] = []


def balance_hooks_register(hook: Callable[..., object]) -> None:
    """Register `hook(states=[BalanceState, ...])`, called by every `balance_crossings` (after the low-balance
    check, in the caller's transaction if it has one). Registering twice is harmless."""
    if hook not in BALANCE_HOOKS:
        BALANCE_HOOKS.append(hook)


def balance_crossings(*, account_ids) -> list[BalanceState]:
    """Check the low-balance alert of these main accounts: one that fell below its threshold is alerted once
    (email and `balance.low`), one back at or above it is re-armed. Both by compare-and-swap with the
    balance re-read in the same statement, so concurrent checks alert once. Returns the states checked."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    rows = list(
        Account.objects.filter(pk__in=ids, kind=Account.Kind.MAIN).values(
            "pk", "user_id", "balance", "held", "user__alert_settings__low_balance_threshold",
            "user__alert_settings__low_balance_alerted",
        )
    )
    states = [BalanceState(r["pk"], r["user_id"], r["balance"], r["held"]) for r in rows]
    default = default_threshold()
    for r, state in zip(rows, states, strict=True):
        threshold = r["user__alert_settings__low_balance_threshold"]
        threshold = default if threshold is None else threshold
        alerted = bool(r["user__alert_settings__low_balance_alerted"])
        below = threshold > 0 and state.available < threshold
        if below and not alerted:
            _low_balance_fell(state)
        elif alerted and not below:
            _low_balance_rearm(state)
    for hook in BALANCE_HOOKS:
        hook(states=states)
    return states


def _fresh_below(*, below: bool):
    """The alert settings row's account is (not) below its threshold, re-read in the UPDATE's own statement."""
    account = Account.objects.filter(user_id=OuterRef("user_id"), kind=Account.Kind.MAIN).annotate(
        spendable=F("balance") - F("held"),
        threshold=Coalesce(OuterRef("low_balance_threshold"), Value(default_threshold()), output_field=BigIntegerField()),
    )
    condition = Q(spendable__lt=F("threshold")) & Q(threshold__gt=0)
    return Exists(account.filter(condition) if below else account.exclude(condition))


def _low_balance_fell(state: BalanceState) -> None:
    AlertSettings.objects.bulk_create([AlertSettings(user_id=state.user_id)], ignore_conflicts=True)
    won = AlertSettings.objects.filter(_fresh_below(below=True), user_id=state.user_id, low_balance_alerted=False).update(
        low_balance_alerted=True, low_balance_alerted_at=timezone.now()
    )
    if not won:
        return
    row = AlertSettings.objects.select_related("user").get(user_id=state.user_id)
    threshold = default_threshold() if row.low_balance_threshold is None else row.low_balance_threshold
    account = Account.objects.only("balance", "held").get(pk=state.account_id)
    available = account.balance - account.held
    alert_email(
        user=row.user, subject=_("Your SynStar balance is low"), template="email/low_balance.txt",
        context={"available": format_usd(available), "threshold": format_usd(threshold)},
    )
    event_emit(user_id=state.user_id, event_type="balance.low", data={
        "available": format_usd(available, places=None), "balance": format_usd(account.balance, places=None),
        "held": format_usd(account.held, places=None), "threshold": format_usd(threshold, places=None), "currency": "USD",
    })


def _low_balance_rearm(state: BalanceState) -> None:
    AlertSettings.objects.filter(_fresh_below(below=False), user_id=state.user_id, low_balance_alerted=True).update(
        low_balance_alerted=False
    )


# --- top-up and refund hooks (registered by WalletConfig.ready) -------------------------------------


def topup_completed_notify(*, order) -> None:
    """A completed top-up: the `topup.completed` event, and the low-balance alert re-armed if it is now above."""
    event_emit(user_id=order.user_id, event_type="topup.completed", data={
        "order_no": order.order_no, "amount": format_usd(order.amount, places=None),
        "bonus": format_usd(order.bonus, places=None), "credited": format_usd(order.amount + order.bonus, places=None),
        "provider": order.provider, "currency": "USD",
    })
    balance_crossings(account_ids=Account.objects.filter(user_id=order.user_id, kind=Account.Kind.MAIN).values_list("pk", flat=True))


def refund_completed_notify(*, order) -> None:
    """A refund recorded on an order: the `refund.completed` event with the order's refund totals."""
    event_emit(user_id=order.user_id, event_type="refund.completed", data={
        "order_no": order.order_no, "cash_refunded": format_usd(order.cash_refunded, places=None),
        "credits_removed": format_usd(order.refunded_amount + order.bonus_clawed, places=None),
        "status": order.status, "currency": "USD",
    })
    balance_crossings(account_ids=Account.objects.filter(user_id=order.user_id, kind=Account.Kind.MAIN).values_list("pk", flat=True))


# --- customer webhooks -------------------------------------------------------------------------------


def event_emit(*, user_id: int, event_type: str, data: dict) -> WebhookDelivery | None:
    """Record an event for the user's webhook (if they set one) and queue its delivery after commit."""
    assert event_type in EVENT_TYPES, event_type
    row = AlertSettings.objects.filter(user_id=user_id).only("webhook_url").first()
    if row is None or not row.webhook_url:
        return None
    event_id = f"evt_{secrets.token_urlsafe(18)}"
    payload = {"id": event_id, "type": event_type, "created": int(time.time()), "data": data}
    delivery = WebhookDelivery.objects.create(
        user_id=user_id, event_id=event_id, event_type=event_type, url=row.webhook_url, payload=payload
    )
    transaction.on_commit(lambda: _enqueue_delivery(delivery.pk))
    return delivery


def webhook_test_send(*, user) -> WebhookDelivery:
    """The console's "send test event" button: a `webhook.test` event to the configured URL."""
    delivery = event_emit(user_id=user.pk, event_type="webhook.test", data={"message": "This is a test event from SynStar."})
    if delivery is None:
        raise InvalidRequest(_("Set a webhook URL first."), code="webhook_not_configured")
    return delivery


def _enqueue_delivery(delivery_id: int) -> None:
    from wallet.tasks import webhook_deliver_task

    try:
        webhook_deliver_task.delay(delivery_id)
    except Exception:  # noqa: BLE001 - the broker is down: the delivery stays pending in the log
        logger.exception("could not queue webhook delivery %s", delivery_id)


def webhook_sign(*, secret: str, body: bytes, timestamp: int) -> str:
    """The `Synstar-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _address_allowed(url: str) -> bool:
    if settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        return True
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt: 30 s doubling per attempt, at most 6 hours."""
    return int(min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """One delivery attempt: POST the signed event, record the answer. Succeeds on a 2xx; after
    ALERT_WEBHOOK_MAX_ATTEMPTS failed attempts the delivery is marked failed. Harmless when run again on a
    delivery that is no longer pending. Returns the delivery as it now is."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery
    secret = AlertSettings.objects.filter(user_id=delivery.user_id).values_list("webhook_secret", flat=True).first() or ""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    code, error = None, ""
    if not _address_allowed(delivery.url):
        error = "The webhook URL does not resolve to a public address."
    else:
        headers = {"Content-Type": "application/json", "User-Agent": "SynStar-Webhooks/1",
                   SIGNATURE_HEADER: webhook_sign(secret=secret, body=body, timestamp=int(time.time()))}
        try:
            response = httpx.post(delivery.url, content=body, headers=headers,
                                  timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False)
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    now = timezone.now()
    attempts = delivery.attempts + 1
    if not error:
        status = WebhookDelivery.Status.SUCCEEDED
    elif attempts >= settings.ALERT_WEBHOOK_MAX_ATTEMPTS:
        status = WebhookDelivery.Status.FAILED
    else:
        status = WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
        attempts=F("attempts") + 1, response_status=code, last_error=error[:500], last_attempt_at=now, status=status,
        delivered_at=now if status == WebhookDelivery.Status.SUCCEEDED else None,
    )
    delivery.refresh_from_db()
    return delivery


def webhook_deliveries_requeue(*, now=None, limit: int = 500) -> int:
    """Beat: queue again the pending deliveries whose task was lost (the broker was down when the event was
    recorded, or a retry message vanished): never attempted after 5 minutes, or not retried 10 minutes after
    their back-off ran out. A delivery may so arrive twice; receivers deduplicate by the event `id`."""
    now = now or timezone.now()
    candidates = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, created_at__lt=now - timedelta(minutes=5)
    ).order_by("id")[:limit]
    due = [
        d.pk for d in candidates
        if d.last_attempt_at is None or d.last_attempt_at + timedelta(seconds=retry_delay(d.attempts) + 600) < now
    ]
    for delivery_id in due:
        _enqueue_delivery(delivery_id)
    return len(due)

"""Payment provider webhooks: verify, store once, process by an explicit event -> handler mapping."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from synstar.errors import InvalidRequest, NotFound
from synstar.i18n import lazy_format
from synstar.money import from_cents, to_cents
from wallet import providers
from wallet.models import (
    TopUpOrder,
    WebhookEvent,
)
from wallet.providers import sandbox_client
from wallet.providers.base import (
    CANCELLED,
    CARD_SAVED,
    DISPUTE_LOST,
    DISPUTE_WON,
    FAILED,
    PAID,
    PENDING,
    REFUND_PENDING,
    REFUND_UPDATED,
    REFUNDED,
    ProviderEvent,
)
from wallet.services.autotopup import autotopup_failed, card_saved
from wallet.services.refunds import (
    order_dispute,
    order_refund_total,
    order_refund_update,
)
from wallet.services.topups import PaymentMismatch, order_close, order_complete

logger = logging.getLogger(__name__)


# --- webhooks -------------------------------------------------------------------------------------


def webhook_receive(*, provider: str, body: bytes, headers) -> tuple[WebhookEvent, bool]:
    """Verify the signature on the raw body, store the event once, queue processing. (event, created)"""
    client = providers.client_for(provider)
    payload = client.webhook_verify(body, headers)
    try:
        event_id, event_type = client.event_identity(payload)
    except (KeyError, TypeError):
        raise InvalidRequest(_("The event has no id or type."), code="invalid_event") from None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(provider=provider, event_id=event_id, event_type=event_type, payload=_jsonable(payload))
            transaction.on_commit(lambda: _enqueue(event.pk))
        return event, True
    except IntegrityError:
        event = WebhookEvent.objects.get(provider=provider, event_id=event_id)
        if event.status == WebhookEvent.Status.FAILED:
            _enqueue(event.pk)  # a redelivery retries a failed event
        return event, False


def _jsonable(payload):
    """Airwallex payloads are parsed with Decimal amounts; store those as exact strings."""
    if isinstance(payload, dict):
        return {k: _jsonable(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_jsonable(v) for v in payload]
    if isinstance(payload, Decimal):
        return str(payload)
    return payload


def _enqueue(event_pk: int) -> None:
    from wallet.tasks import (
        webhook_process_task,  # a real cycle: the task module calls this service
    )

    try:
        webhook_process_task.delay(event_pk)
    except Exception:
        logger.exception("could not queue webhook event %s; the retry task will pick it up", event_pk)


def _find_order(provider: str, event: ProviderEvent) -> TopUpOrder | None:
    qs = TopUpOrder.objects.filter(provider=provider)
    if event.order_no:
        order = qs.filter(order_no=event.order_no).first()
        if order:
            return order
    if event.checkout_id:
        order = qs.filter(checkout_id=event.checkout_id).first()
        if order:
            return order
    if event.payment_id:
        return qs.filter(payment_id=event.payment_id).first()
    return None


def _handle_paid(provider, event, order):
    order_complete(order_id=order.pk, amount_cents=event.amount_cents, currency=event.currency, payment_id=event.payment_id or "")


def _handle_pending(provider, event, order):
    if event.payment_id and not order.payment_id:
        TopUpOrder.objects.filter(pk=order.pk, payment_id="").update(payment_id=event.payment_id)


def _handle_failed(provider, event, order):
    if order.source == TopUpOrder.Source.AUTO:  # a saved card's charge failed: auto top-up turns off
        autotopup_failed(order_id=order.pk, failure_code=event.extra.get("failure_code", ""))
        return
    order_close(order_id=order.pk, status=TopUpOrder.Status.FAILED, reason=f"{provider}: payment failed")


def _handle_cancelled(provider, event, order):
    order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED, reason=f"{provider}: checkout expired or cancelled")


def _check_refund_currency(provider, event, order):
    if event.currency and event.currency.lower() != order.currency:
        raise PaymentMismatch(lazy_format(_("Order %(order_no)s: %(provider)s reports a refund or dispute in %(currency)s, the order is in %(currency2)s; nothing changed."), order_no=order.order_no, provider=provider, currency=event.currency, currency2=order.currency))


def _handle_refund_total(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_refund_total(order_id=order.pk, total=from_cents(event.refund_total_cents or 0), key=f"{provider}:{event.refund_id}",
                       reason=f"{provider} refund")


def _handle_refund_update(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_refund_update(order_id=order.pk, provider=provider, refund_id=event.refund_id or "", refund_key=event.refund_key,
                        status=event.refund_status or REFUND_PENDING,
                        cash=from_cents(event.refund_cents) if event.refund_cents is not None else None,
                        counts=event.refund_counts)


def _handle_dispute(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_dispute(order_id=order.pk, provider=provider, dispute_id=event.dispute_id or "", stage=event.dispute_stage,
                  lost=event.action == DISPUTE_LOST,
                  cash=from_cents(event.refund_cents) if event.refund_cents is not None else order.amount)


ACTION_HANDLERS = {
    PAID: _handle_paid,
    PENDING: _handle_pending,
    FAILED: _handle_failed,
    CANCELLED: _handle_cancelled,
    REFUNDED: _handle_refund_total,
    REFUND_UPDATED: _handle_refund_update,
    DISPUTE_LOST: _handle_dispute,
    DISPUTE_WON: _handle_dispute,
}


def _handle_card_saved(provider, event):
    card_saved(provider=provider, customer_id=event.extra.get("customer", ""), setup_intent_id=event.extra.get("setup_intent", ""),
               checkout_id=event.checkout_id or "")


# Events about no order (a card saved for auto top-up).
ORDERLESS_HANDLERS = {CARD_SAVED: _handle_card_saved}


def webhook_process(*, event_pk: int) -> WebhookEvent:
    """Apply one stored event (exactly once: the row lock and status make a rerun harmless)."""
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_pk)
            if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
                return event
            parsed = providers.client_for(event.provider).event_parse(event.payload)
            if parsed is None:
                event.status = WebhookEvent.Status.IGNORED
            elif parsed.action in ORDERLESS_HANDLERS:
                ORDERLESS_HANDLERS[parsed.action](event.provider, parsed)
                event.status = WebhookEvent.Status.PROCESSED
            else:
                order = _find_order(event.provider, parsed)
                if order is None:
                    raise NotFound(lazy_format(_("No order matches this %(provider)s event."), provider=event.provider), code="unknown_order")
                ACTION_HANDLERS[parsed.action](event.provider, parsed, order)
                event.status = WebhookEvent.Status.PROCESSED
            event.attempts += 1
            event.error = ""
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "attempts", "error", "processed_at"])
            return event
    except Exception as exc:
        WebhookEvent.objects.filter(pk=event_pk).exclude(status=WebhookEvent.Status.PROCESSED).update(
            status=WebhookEvent.Status.FAILED, attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        logger.warning("webhook event %s failed: %s", event_pk, exc)
        raise




def webhook_events_requeue(*, event_ids) -> int:
    """Admin's "reprocess": put the chosen events (never a processed one) back to received and queue them."""
    pks = list(WebhookEvent.objects.filter(pk__in=list(event_ids)).exclude(status=WebhookEvent.Status.PROCESSED)
               .values_list("pk", flat=True))
    WebhookEvent.objects.filter(pk__in=pks).exclude(status=WebhookEvent.Status.PROCESSED).update(status=WebhookEvent.Status.RECEIVED)
    for pk in pks:
        _enqueue(pk)
    return len(pks)


def webhook_events_retry(*, stale_after: timedelta = timedelta(minutes=2), max_attempts: int = 10, limit: int = 200) -> int:
    """Beat: queue failed events, and any stuck in received, for another attempt (up to `max_attempts` each)."""
    stale = timezone.now() - stale_after
    pks = list(
        WebhookEvent.objects.filter(status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.RECEIVED],
                                    attempts__lt=max_attempts, received_at__lt=stale).values_list("pk", flat=True)[:limit]
    )
    for pk in pks:
        _enqueue(pk)
    return len(pks)


SANDBOX_OUTCOMES = {"pay": "payment.succeeded", "fail": "payment.failed", "cancel": "payment.cancelled"}


def sandbox_checkout_find(*, user, checkout_id: str) -> TopUpOrder:
    """The user's own order behind a sandbox checkout page (only while the sandbox stands in)."""
    order = TopUpOrder.objects.filter(checkout_id=checkout_id, provider="sandbox", user=user).first()
    if not providers.sandbox_enabled() or order is None:
        raise NotFound(_("No such sandbox checkout."), code="checkout_not_found")
    return order


def sandbox_checkout_answer(*, user, checkout_id: str, outcome: str) -> TopUpOrder | None:
    """The sandbox page's pay / decline / cancel: sends the signed event the sandbox provider would, into the
    same path as a provider's POST (signature check, stored once, processed by Celery). None if the order is
    no longer pending or the outcome is unknown."""
    order = sandbox_checkout_find(user=user, checkout_id=checkout_id)
    event_type = SANDBOX_OUTCOMES.get(outcome)
    if order.status != TopUpOrder.Status.PENDING or event_type is None:
        return None
    body = sandbox_client.event_build(event_type=event_type, order=order, amount_cents=to_cents(order.amount))
    webhook_receive(provider="sandbox", body=body, headers={sandbox_client.HEADER: sandbox_client.sign(body)})
    return order

"""Stripe, through the official library only: Checkout Sessions, refunds, signed webhooks."""

from __future__ import annotations

import json
import logging

import stripe
from django.conf import settings

from wallet.providers.base import (
    CANCELLED,
    CHECKOUT_FAILED,
    LOOKUP_FAILED,
    REFUND_FAILED,
    DISPUTED,
    FAILED,
    PAID,
    PENDING,
    REFUNDED,
    Checkout,
    PaymentStatus,
    ProviderError,
    ProviderEvent,
    SignatureInvalid,
)


logger = logging.getLogger(__name__)


def _failed(exc: stripe.StripeError, message: str, *, order, action: str) -> ProviderError:
    """Stripe's own text (e.g. "Invalid response body from API: ...") goes to the log and the order, never to a user."""
    detail = f"Stripe {action}: {type(exc).__name__}: {exc}"
    if getattr(exc, "request_id", None):
        detail += f" (request {exc.request_id})"
    logger.warning("Stripe call for order %s failed: %s", order.order_no, detail)
    return ProviderError(message.format(provider="Stripe"), detail=detail)


def _client() -> stripe.StripeClient:
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2)


def checkout_create(order, *, amount_cents: int, success_url: str, cancel_url: str) -> Checkout:
    method = order.method.provider_method
    params = {
        "mode": "payment",
        "client_reference_id": order.order_no,
        "metadata": {"order_no": order.order_no},
        "payment_intent_data": {"metadata": {"order_no": order.order_no}},
        "payment_method_types": [method],
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": order.currency,
                    "unit_amount": amount_cents,
                    "product_data": {"name": f"SynStar credits, order {order.order_no}"},
                },
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if method == "wechat_pay":
        params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
    try:
        session = _client().v1.checkout.sessions.create(params=params, options={"idempotency_key": f"checkout-{order.order_no}"})
    except stripe.StripeError as exc:
        raise _failed(exc, CHECKOUT_FAILED, order=order, action="checkout create") from exc
    return Checkout(checkout_id=session.id, url=session.url)


def checkout_lookup(order) -> PaymentStatus:
    try:
        session = _client().v1.checkout.sessions.retrieve(order.checkout_id)
    except stripe.StripeError as exc:
        raise _failed(exc, LOOKUP_FAILED, order=order, action="checkout lookup") from exc
    if session.status == "complete" and session.payment_status in ("paid", "no_payment_required"):
        state = "paid"
    elif session.status == "expired":
        state = "cancelled"
    else:
        state = "open"
    return PaymentStatus(
        state=state, amount_cents=session.amount_total, currency=session.currency, payment_id=session.payment_intent or ""
    )


def checkout_cancel(order) -> None:
    """Expire an abandoned Checkout Session so it can no longer be paid (POST /v1/checkout/sessions/{id}/expire)."""
    try:
        _client().v1.checkout.sessions.expire(order.checkout_id)
    except stripe.StripeError as exc:
        raise _failed(exc, LOOKUP_FAILED, order=order, action="checkout expire") from exc


def refund_create(order, *, amount_cents: int, idempotency_key: str) -> str:
    try:
        refund = _client().v1.refunds.create(
            params={"payment_intent": order.payment_id, "amount": amount_cents, "metadata": {"order_no": order.order_no}},
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise _failed(exc, REFUND_FAILED, order=order, action="refund") from exc
    return refund.id


def webhook_verify(body: bytes, headers) -> dict:
    signature = headers.get("Stripe-Signature")
    if not signature or not settings.STRIPE_WEBHOOK_SECRET:
        raise SignatureInvalid("Missing Stripe-Signature header.")
    try:
        stripe.Webhook.construct_event(body, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=300)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise SignatureInvalid(f"Stripe signature check failed: {exc}") from None
    return json.loads(body)


def event_identity(payload: dict) -> tuple[str, str]:
    return payload["id"], payload["type"]


def _session(action):
    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=action(obj) if callable(action) else action,
            order_no=(obj.get("metadata") or {}).get("order_no") or obj.get("client_reference_id"),
            checkout_id=obj.get("id"),
            payment_id=obj.get("payment_intent"),
            amount_cents=obj.get("amount_total"),
            currency=obj.get("currency"),
        )

    return parse


def _charge_refunded(obj: dict) -> ProviderEvent:
    return ProviderEvent(
        action=REFUNDED, payment_id=obj.get("payment_intent"), refund_total_cents=obj.get("amount_refunded"),
        refund_id=f"stripe-refunded:{obj.get('id')}:{obj.get('amount_refunded')}", currency=obj.get("currency"),
    )


def _dispute(obj: dict) -> ProviderEvent:
    return ProviderEvent(
        action=DISPUTED, payment_id=obj.get("payment_intent"), refund_cents=obj.get("amount"),
        refund_id=f"stripe-dispute:{obj.get('id')}", currency=obj.get("currency"),
    )


EVENT_HANDLERS = {
    "checkout.session.completed": _session(lambda o: PAID if o.get("payment_status") == "paid" else PENDING),
    "checkout.session.async_payment_succeeded": _session(PAID),
    "checkout.session.async_payment_failed": _session(FAILED),
    "checkout.session.expired": _session(CANCELLED),
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute,
}


def event_parse(payload: dict) -> ProviderEvent | None:
    handler = EVENT_HANDLERS.get(payload.get("type"))
    return handler(payload["data"]["object"]) if handler else None

"""Airwallex, over its REST API (httpx): Payment Intents, the hosted payment page, refunds, webhooks.

Amounts are decimal numbers of major units in Airwallex's JSON; they are parsed as Decimal, never
float, and converted to cents here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.core.cache import cache

from wallet.providers.base import (
    CANCELLED,
    DISPUTE_LOST,
    DISPUTE_WON,
    PAID,
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    REFUND_UPDATED,
    Checkout,
    PaymentStatus,
    ProviderError,
    ProviderEvent,
    SignatureInvalid,
)

TIMEOUT = httpx.Timeout(10.0)
TOLERANCE_SECONDS = 300


def _base() -> str:
    return settings.AIRWALLEX_API_BASE.rstrip("/")


def _token() -> str:
    token = cache.get("airwallex:token")
    if token:
        return token
    response = httpx.post(
        f"{_base()}/api/v1/authentication/login",
        headers={"x-client-id": settings.AIRWALLEX_CLIENT_ID, "x-api-key": settings.AIRWALLEX_API_KEY},
        timeout=TIMEOUT,
    )
    if response.status_code >= 400:
        raise ProviderError(f"Airwallex authentication failed ({response.status_code}).")
    token = response.json()["token"]
    cache.set("airwallex:token", token, 25 * 60)
    return token


def _request(method: str, path: str, **kwargs) -> dict:
    try:
        response = httpx.request(method, f"{_base()}{path}", headers={"Authorization": f"Bearer {_token()}"}, timeout=TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise ProviderError(f"Airwallex could not be reached: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        # 4xx: Airwallex answered and refused; 5xx: the outcome is unknown.
        raise ProviderError(f"Airwallex refused the request ({response.status_code}).", retryable=response.status_code >= 500)
    return json.loads(response.content, parse_float=Decimal)


def _cents(amount) -> int:
    value = Decimal(str(amount)) * 100
    if value != value.to_integral_value():
        raise ProviderError(f"Airwallex amount {amount} is not whole cents.")
    return int(value)


def _major(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def checkout_create(order, *, amount_cents: int, success_url: str, cancel_url: str) -> Checkout:
    intent = _request(
        "POST",
        "/api/v1/pa/payment_intents/create",
        content=json.dumps({
            "request_id": f"checkout-{order.order_no}",
            "amount": _major(amount_cents),
            "currency": order.currency.upper(),
            "merchant_order_id": order.order_no,
            "metadata": {"order_no": order.order_no},
            "return_url": success_url,
        }),
        # The amount is sent as a decimal string; Airwallex parses it exactly.
    )
    query = urlencode({
        "intent_id": intent["id"], "client_secret": intent["client_secret"], "currency": order.currency.upper(),
        "successUrl": success_url, "failUrl": cancel_url,
    })
    return Checkout(checkout_id=intent["id"], url=f"{settings.AIRWALLEX_CHECKOUT_BASE.rstrip('/')}/#/standalone/checkout?{query}")


def checkout_lookup(order) -> PaymentStatus:
    intent = _request("GET", f"/api/v1/pa/payment_intents/{order.checkout_id}")
    state = {"SUCCEEDED": "paid", "CANCELLED": "cancelled"}.get(intent.get("status"), "open")
    return PaymentStatus(state=state, amount_cents=_cents(intent["amount"]), currency=intent.get("currency", "").lower(), payment_id=intent["id"])


def refund_create(order, *, amount_cents: int, idempotency_key: str) -> str:
    """`idempotency_key` (a UUID4) is the request_id: the refund events echo it back, so they are
    recognised as this refund in any order."""
    refund = _request(
        "POST",
        "/api/v1/pa/refunds/create",
        content=json.dumps({"request_id": idempotency_key, "payment_intent_id": order.payment_id, "amount": _major(amount_cents),
                            "metadata": {"order_no": order.order_no, "refund_key": idempotency_key}}),
    )
    return refund["id"]


def webhook_verify(body: bytes, headers) -> dict:
    timestamp, signature = headers.get("x-timestamp"), headers.get("x-signature")
    secret = settings.AIRWALLEX_WEBHOOK_SECRET
    if not timestamp or not signature or not secret:
        raise SignatureInvalid("Missing x-timestamp or x-signature header.")
    expected = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureInvalid("Airwallex signature does not match.")
    try:
        sent = int(timestamp) / 1000
    except ValueError:
        raise SignatureInvalid("x-timestamp is not a number.") from None
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        raise SignatureInvalid("Airwallex webhook timestamp is too old (or in the future).")
    return json.loads(body, parse_float=Decimal)


def event_identity(payload: dict) -> tuple[str, str]:
    return payload["id"], payload["name"]


def _intent(action):
    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=action, order_no=obj.get("merchant_order_id"), checkout_id=obj.get("id"), payment_id=obj.get("id"),
            amount_cents=_cents(obj["amount"]) if obj.get("amount") is not None else None,
            currency=(obj.get("currency") or "").lower(),
        )

    return parse


def _refund(status: str):
    """refund.*: one refund object. `request_id` is the idempotency key we sent when the refund is ours."""

    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=REFUND_UPDATED, payment_id=obj.get("payment_intent_id"),
            refund_cents=_cents(obj["amount"]) if obj.get("amount") is not None else None,
            refund_id=obj.get("id"), refund_status=status, refund_counts=True,
            refund_key=obj.get("request_id") or (obj.get("metadata") or {}).get("refund_key") or None,
            currency=(obj.get("currency") or "").lower(),
        )

    return parse


def _dispute(action: str):
    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=action, payment_id=obj.get("payment_intent_id"), order_no=obj.get("merchant_order_id"),
            refund_cents=_cents(obj["amount"]) if obj.get("amount") is not None else None,
            dispute_id=obj.get("id"), currency=(obj.get("currency") or "").lower(),
        )

    return parse


EVENT_HANDLERS = {
    "payment_intent.succeeded": _intent(PAID),
    "payment_intent.cancelled": _intent(CANCELLED),
    # A refund counts once, when Airwallex says it succeeded or settled (whichever comes first).
    "refund.received": _refund(REFUND_PENDING),
    "refund.accepted": _refund(REFUND_PENDING),
    "refund.succeeded": _refund(REFUND_SUCCEEDED),
    "refund.settled": _refund(REFUND_SUCCEEDED),
    "refund.failed": _refund(REFUND_FAILED),
    # Disputes: money left when the dispute is accepted, lost or expired (no response in time);
    # it comes back when the dispute is won or reversed by the issuer.
    "payment_dispute.accepted": _dispute(DISPUTE_LOST),
    "payment_dispute.lost": _dispute(DISPUTE_LOST),
    "payment_dispute.expired": _dispute(DISPUTE_LOST),
    "payment_dispute.won": _dispute(DISPUTE_WON),
    "payment_dispute.reversed": _dispute(DISPUTE_WON),
}


def event_parse(payload: dict) -> ProviderEvent | None:
    handler = EVENT_HANDLERS.get(payload.get("name"))
    return handler(payload["data"]["object"]) if handler else None

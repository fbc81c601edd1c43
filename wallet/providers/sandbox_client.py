"""The sandbox provider: stands in for real providers when none is configured (the quickstart).

Clearly labelled everywhere; no money moves. Its hosted page (/sandbox/checkout/<id>/) lets the user
pay, fail or cancel; the result is sent as a signed webhook (Stripe's t=...,v1=... scheme with a
sandbox secret) into the same webhook path, event store and Celery task as real providers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from synstar.i18n import lazy_format
from wallet.providers.base import (
    CANCELLED,
    FAILED,
    PAID,
    REFUNDED,
    Checkout,
    PaymentStatus,
    ProviderEvent,
    SignatureInvalid,
)

HEADER = "Sandbox-Signature"
TOLERANCE_SECONDS = 300


def _secret() -> bytes:
    return hashlib.sha256(f"sandbox-webhooks:{settings.SECRET_KEY}".encode()).digest()


def sign(body: bytes, *, timestamp: int | None = None) -> str:
    timestamp = timestamp or int(time.time())
    digest = hmac.new(_secret(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def checkout_create(order, *, amount_cents: int, success_url: str, cancel_url: str) -> Checkout:
    checkout_id = f"sbx_cs_{secrets.token_hex(12)}"
    return Checkout(checkout_id=checkout_id, url=reverse("console:sandbox-checkout", args=[checkout_id]))


def checkout_lookup(order) -> PaymentStatus:
    return PaymentStatus(state="open")  # the sandbox keeps no state of its own


def checkout_cancel(order) -> None:
    return None  # the sandbox keeps no state of its own


def refund_create(order, *, amount_cents: int, idempotency_key: str) -> str:
    return f"sbx_re_{secrets.token_hex(8)}"


def event_build(*, event_type: str, order, amount_cents: int) -> bytes:
    return json.dumps({
        "id": f"sbx_evt_{secrets.token_hex(12)}",
        "type": event_type,
        "data": {"order_no": order.order_no, "checkout_id": order.checkout_id, "amount_cents": amount_cents,
                 "currency": order.currency, "payment_id": f"sbx_pi_{order.checkout_id[7:]}"},
    }).encode()


def webhook_verify(body: bytes, headers) -> dict:
    header = headers.get(HEADER) or ""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        raise SignatureInvalid(lazy_format(_("Missing %(HEADER)s header."), HEADER=HEADER))
    expected = sign(body, timestamp=int(parts["t"])).split("v1=")[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureInvalid(_("Sandbox signature does not match."))
    if abs(time.time() - int(parts["t"])) > TOLERANCE_SECONDS:
        raise SignatureInvalid(_("Sandbox webhook timestamp is too old."))
    return json.loads(body)


def event_identity(payload: dict) -> tuple[str, str]:
    return payload["id"], payload["type"]


ACTIONS = {"payment.succeeded": PAID, "payment.failed": FAILED, "payment.cancelled": CANCELLED, "refund.succeeded": REFUNDED}


def event_parse(payload: dict) -> ProviderEvent | None:
    action = ACTIONS.get(str(payload.get("type")))
    if action is None:
        return None
    d = payload["data"]
    return ProviderEvent(action=action, order_no=d["order_no"], checkout_id=d["checkout_id"], payment_id=d["payment_id"],
                         amount_cents=d["amount_cents"], currency=d["currency"])

"""Airwallex, over its REST API (httpx): Payment Intents, the hosted payment page, refunds, webhooks.

Amounts are decimal numbers of major units in Airwallex's JSON; they are parsed as Decimal, never
float, and converted to cents here.

Requests follow Airwallex's API reference and its official plugins (WooCommerce, Magento's
payapps-plugin-php-common-lib): JSON bodies with `Content-Type: application/json`, a pinned
`x-api-version`, an access token from POST /api/v1/authentication/login cached until shortly before
its `expires_at` (about 30 minutes), one fresh login and retry when a call answers 401, and a UUID
`request_id` on every write. The hosted payment page is opened with Airwallex.js
(`payments.redirectToCheckout`), from our page `/checkout/airwallex/<order_no>/`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from synstar.i18n import lazy_format
from wallet.providers.base import (
    CANCELLED,
    DISPUTE_LOST,
    DISPUTE_WON,
    MSG_CHECKOUT_FAILED,
    MSG_LOOKUP_FAILED,
    MSG_REFUND_FAILED,
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

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0)
TOLERANCE_SECONDS = 300
TOKEN_MARGIN_SECONDS = 60  # stop using a token this long before its expires_at
SDK_URL = "https://static.airwallex.com/components/sdk/v1/index.js"  # Airwallex.js (Components SDK)


class _Unauthorized(Exception):
    pass


def _base() -> str:
    return settings.AIRWALLEX_API_BASE.rstrip("/")


def _token_key() -> str:
    # One cached token per credential: rotating the key (or another account) never reuses an old token.
    digest = hashlib.sha256(f"{settings.AIRWALLEX_CLIENT_ID}:{settings.AIRWALLEX_API_KEY}".encode()).hexdigest()[:16]
    return f"airwallex:token:{digest}"


def _headers(extra: dict | None = None) -> dict:
    return {"Content-Type": "application/json", "Accept": "application/json",
            "x-api-version": settings.AIRWALLEX_API_VERSION, **(extra or {})}


def _login() -> str:
    """POST /api/v1/authentication/login; cache the token until TOKEN_MARGIN_SECONDS before expires_at."""
    try:
        response = httpx.post(
            f"{_base()}/api/v1/authentication/login",
            headers=_headers({"x-client-id": settings.AIRWALLEX_CLIENT_ID, "x-api-key": settings.AIRWALLEX_API_KEY}),
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise ProviderError(detail=f"Airwallex login: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise ProviderError(detail=f"Airwallex login answered {response.status_code}: {response.text[:500]}")
    try:
        body = response.json()
        token = body["token"]
        expires_at = datetime.fromisoformat(body["expires_at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(detail=f"Airwallex login answer unreadable: {response.text[:500]}") from exc
    lifetime = int(expires_at.timestamp() - time.time()) - TOKEN_MARGIN_SECONDS
    if lifetime > 0:
        cache.set(_token_key(), token, lifetime)
    return token


def _token() -> str:
    return cache.get(_token_key()) or _login()


def request_id(key: str | None = None) -> str:
    """A UUID in version-4 form. With a key (an order's checkout, a refund's idempotency key) it is
    derived from the key, so a retry of the same operation sends the same request_id and Airwallex
    deduplicates it; without one it is random."""
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(bytes=hashlib.sha256(f"synstar:{key}".encode()).digest()[:16], version=4))


def _send(method: str, path: str, token: str, body: dict | None) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else None
    response = httpx.request(method, f"{_base()}{path}", headers=_headers({"Authorization": f"Bearer {token}"}),
                             content=content, timeout=TIMEOUT)
    if response.status_code == 401:
        raise _Unauthorized(response.text[:500])
    return response


def _request(method: str, path: str, body: dict | None = None) -> dict:
    """One API call. A 401 (the token expired or was revoked early) logs in again once and retries."""
    try:
        try:
            response = _send(method, path, _token(), body)
        except _Unauthorized:
            cache.delete(_token_key())
            try:
                response = _send(method, path, _login(), body)
            except _Unauthorized as exc:
                raise ProviderError(detail=f"Airwallex {method} {path} answered 401 after a fresh login: {exc}") from None
    except httpx.HTTPError as exc:
        raise ProviderError(detail=f"Airwallex {method} {path}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        # 4xx (but 429): Airwallex answered and refused; 5xx and 429: the outcome is unknown.
        raise ProviderError(detail=f"Airwallex {method} {path} answered {response.status_code}: {response.text[:500]}",
                            retryable=response.status_code >= 500 or response.status_code == 429)
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise ProviderError(detail=f"Airwallex {method} {path}: unreadable answer {response.text[:500]!r}") from exc


def _failed(exc: ProviderError, message: str | Promise, *, order) -> ProviderError:
    logger.warning("Airwallex call for order %s failed: %s", order.order_no, exc.detail)
    return ProviderError(lazy_format(message, provider="Airwallex"), detail=exc.detail, retryable=exc.retryable)


def _cents(amount) -> int:
    value = Decimal(str(amount)) * 100
    if value != value.to_integral_value():
        raise ProviderError(lazy_format(_("Airwallex amount %(amount)s is not whole cents."), amount=amount))
    return int(value)


def _major(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def production() -> bool:
    return settings.AIRWALLEX_ENV == "prod"


def return_url_check(url: str) -> str:
    """Airwallex sends shoppers back only to https pages in production (the demo accepts http for local runs)."""
    if production() and urlsplit(url).scheme != "https":
        raise ProviderError(detail=f"Airwallex return URL must be https in production, got {url!r}: "
                                   "serve the console over https (or set SECURE_PROXY_SSL_HEADER behind a proxy).")
    return url


def checkout_create(order, *, amount_cents: int, success_url: str, cancel_url: str) -> Checkout:
    try:
        return_url_check(success_url)
        return_url_check(cancel_url)
        intent = _request("POST", "/api/v1/pa/payment_intents/create", {
            "request_id": request_id(f"checkout:{order.order_no}"),
            "amount": _major(amount_cents),  # a decimal string; Airwallex parses it exactly
            "currency": order.currency.upper(),
            "merchant_order_id": order.order_no,
            "metadata": {"order_no": order.order_no},
            "return_url": success_url,
        })
    except ProviderError as exc:
        raise _failed(exc, MSG_CHECKOUT_FAILED, order=order) from exc
    # The shopper goes to our page, which opens Airwallex's hosted page with Airwallex.js.
    return Checkout(checkout_id=intent["id"], url=reverse("console:airwallex-checkout", args=[order.order_no]))


def checkout_page_options(order, *, success_url: str, fail_url: str) -> dict:
    """What our page passes to Airwallex.js `payments.redirectToCheckout` (its documented options)."""
    try:
        intent = _request("GET", f"/api/v1/pa/payment_intents/{order.checkout_id}")
        options = {
            "env": settings.AIRWALLEX_ENV,
            "mode": "payment",
            "intent_id": intent["id"],
            "client_secret": intent["client_secret"],
            "currency": intent["currency"],
            "successUrl": return_url_check(success_url),
            "failUrl": return_url_check(fail_url),
        }
    except (ProviderError, KeyError) as exc:
        if not isinstance(exc, ProviderError):
            exc = ProviderError(detail=f"Airwallex intent {order.checkout_id} has no {exc}")
        raise _failed(exc, MSG_CHECKOUT_FAILED, order=order) from exc
    if order.user.country:
        options["country_code"] = order.user.country.code
    return options


def checkout_lookup(order) -> PaymentStatus:
    try:
        intent = _request("GET", f"/api/v1/pa/payment_intents/{order.checkout_id}")
        state = {"SUCCEEDED": "paid", "CANCELLED": "cancelled"}.get(str(intent.get("status")), "open")
        return PaymentStatus(state=state, amount_cents=_cents(intent["amount"]), currency=intent.get("currency", "").lower(),
                             payment_id=intent["id"])
    except ProviderError as exc:
        raise _failed(exc, MSG_LOOKUP_FAILED, order=order) from exc


def checkout_cancel(order) -> None:
    """Cancel an abandoned payment intent, so it can no longer be paid (POST .../payment_intents/{id}/cancel)."""
    try:
        _request("POST", f"/api/v1/pa/payment_intents/{order.checkout_id}/cancel", {
            "request_id": request_id(f"cancel:{order.order_no}"),
            "cancellation_reason": "Not paid within the checkout's lifetime",
        })
    except ProviderError as exc:
        raise _failed(exc, MSG_LOOKUP_FAILED, order=order) from exc


def refund_create(order, *, amount_cents: int, idempotency_key: str) -> str:
    """The request_id is a UUID derived from our idempotency key (a retry sends the same one); the key itself
    goes in the metadata, which the refund events echo back, so they are recognised as this refund."""
    try:
        refund = _request("POST", "/api/v1/pa/refunds/create", {
            "request_id": request_id(f"refund:{idempotency_key}"),
            "payment_intent_id": order.payment_id,
            "amount": _major(amount_cents),
            "metadata": {"order_no": order.order_no, "refund_key": idempotency_key},
        })
    except ProviderError as exc:
        raise _failed(exc, MSG_REFUND_FAILED, order=order) from exc
    return refund["id"]


def webhook_verify(body: bytes, headers) -> dict:
    timestamp, signature = headers.get("x-timestamp"), headers.get("x-signature")
    secret = settings.AIRWALLEX_WEBHOOK_SECRET
    if not timestamp or not signature or not secret:
        raise SignatureInvalid(_("Missing x-timestamp or x-signature header."))
    expected = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureInvalid(_("Airwallex signature does not match."))
    try:
        sent = int(timestamp) / 1000
    except ValueError:
        raise SignatureInvalid(_("x-timestamp is not a number.")) from None
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        raise SignatureInvalid(_("Airwallex webhook timestamp is too old (or in the future)."))
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
    """refund.*: one refund object. Its metadata carries the idempotency key we sent when the refund is ours."""

    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=REFUND_UPDATED, payment_id=obj.get("payment_intent_id"),
            refund_cents=_cents(obj["amount"]) if obj.get("amount") is not None else None,
            refund_id=obj.get("id"), refund_status=status, refund_counts=True,
            refund_key=(obj.get("metadata") or {}).get("refund_key") or None,
            currency=(obj.get("currency") or "").lower(),
        )

    return parse


def _dispute(action: str):
    def parse(obj: dict) -> ProviderEvent:
        return ProviderEvent(
            action=action, payment_id=obj.get("payment_intent_id"), order_no=obj.get("merchant_order_id"),
            refund_cents=_cents(obj["amount"]) if obj.get("amount") is not None else None,
            dispute_id=obj.get("id"), dispute_stage=str(obj.get("stage") or "").upper(), currency=(obj.get("currency") or "").lower(),
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
    handler = EVENT_HANDLERS.get(str(payload.get("name")))
    return handler(payload["data"]["object"]) if handler else None

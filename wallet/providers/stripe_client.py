"""Stripe, through the official library only: Checkout Sessions (payment and setup mode), customers,
SetupIntents, off-session PaymentIntents (auto top-up), refunds, signed webhooks."""

from __future__ import annotations

import json
import logging
import time

import stripe
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from stripe._base_address import BaseAddresses  # the client's own type for base_addresses

from synstar.i18n import lazy_format
from wallet.providers.base import (
    CANCELLED,
    CARD_SAVED,
    DISPUTE_LOST,
    DISPUTE_WON,
    FAILED,
    MSG_CARD_SETUP_FAILED,
    MSG_CHARGE_FAILED,
    MSG_CHECKOUT_FAILED,
    MSG_LOOKUP_FAILED,
    MSG_REFUND_FAILED,
    PAID,
    PENDING,
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    REFUND_UPDATED,
    REFUNDED,
    Checkout,
    OffSessionCharge,
    PaymentStatus,
    ProviderError,
    ProviderEvent,
    SavedCard,
    SignatureInvalid,
)

TOLERANCE_SECONDS = 300
# Errors after which the outcome of a call is unknown (it may have taken effect): ask again later with
# the same idempotency key. Any other StripeError is Stripe's answer, and asking again gives the same one.
_OUTCOME_UNKNOWN = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError, stripe.IdempotencyError)


logger = logging.getLogger(__name__)


def _failed(exc: stripe.StripeError, message: str | Promise, *, order, action: str) -> ProviderError:
    """Stripe's own text (e.g. "Invalid response body from API: ...") goes to the log and the order, never to a user."""
    detail = f"Stripe {action}: {type(exc).__name__}: {exc}"
    if getattr(exc, "request_id", None):
        detail += f" (request {exc.request_id})"
    logger.warning("Stripe call for order %s failed: %s", order.order_no, detail)
    return ProviderError(lazy_format(message, provider="Stripe"), detail=detail, retryable=isinstance(exc, _OUTCOME_UNKNOWN))


def _client() -> stripe.StripeClient:
    base: BaseAddresses | None = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
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
        session = _client().v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]  # built as a plain dict; the TypedDict is only a hint
            options={"idempotency_key": f"checkout-{order.order_no}"},
        )
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_CHECKOUT_FAILED, order=order, action="checkout create") from exc
    return Checkout(checkout_id=session.id, url=session.url or "")


def checkout_lookup(order) -> PaymentStatus:
    if order.checkout_id.startswith("pi_"):  # an auto top-up: an off-session PaymentIntent, no Checkout Session
        return _payment_intent_lookup(order)
    try:
        session = _client().v1.checkout.sessions.retrieve(order.checkout_id)
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_LOOKUP_FAILED, order=order, action="checkout lookup") from exc
    if session.status == "complete" and session.payment_status in ("paid", "no_payment_required"):
        state = "paid"
    elif session.status == "expired":
        state = "cancelled"
    else:
        state = "open"
    return PaymentStatus(
        state=state, amount_cents=session.amount_total, currency=session.currency, payment_id=str(session.payment_intent or "")
    )


def checkout_cancel(order) -> None:
    """Expire an abandoned Checkout Session so it can no longer be paid (POST /v1/checkout/sessions/{id}/expire)."""
    try:
        if order.checkout_id.startswith("pi_"):
            _client().v1.payment_intents.cancel(order.checkout_id)
        else:
            _client().v1.checkout.sessions.expire(order.checkout_id)
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_LOOKUP_FAILED, order=order, action="checkout expire") from exc


# --- saved cards and off-session charges (auto top-up) ---------------------------------------------

AUTO_TOPUP_SOURCE = "auto_topup"  # metadata["source"] on our off-session PaymentIntents


def _setup_failed(exc: stripe.StripeError, action: str, *, user_id: int) -> ProviderError:
    detail = f"Stripe {action}: {type(exc).__name__}: {exc}"
    logger.warning("Stripe call for user %s failed: %s", user_id, detail)
    return ProviderError(lazy_format(MSG_CARD_SETUP_FAILED, provider="Stripe"), detail=detail,
                         retryable=isinstance(exc, _OUTCOME_UNKNOWN))


def customer_create(*, user_id: int, email: str) -> str:
    """The Stripe Customer a saved card is attached to (one per user: the idempotency key is the user's)."""
    try:
        customer = _client().v1.customers.create(
            params={"email": email, "metadata": {"user_id": str(user_id)}},
            options={"idempotency_key": f"customer-user-{user_id}"},
        )
    except stripe.StripeError as exc:
        raise _setup_failed(exc, "customer create", user_id=user_id) from exc
    return customer.id


def card_setup_create(*, user_id: int, customer_id: str, success_url: str, cancel_url: str) -> Checkout:
    """A Checkout Session in setup mode: the user enters a card on Stripe's page, and Stripe saves it to the
    customer for later off-session use (its SetupIntent has usage=off_session)."""
    try:
        session = _client().v1.checkout.sessions.create(
            params={
                "mode": "setup",
                "customer": customer_id,
                "client_reference_id": f"user-{user_id}",
                "metadata": {"user_id": str(user_id), "purpose": AUTO_TOPUP_SOURCE},
                "payment_method_types": ["card"],
                "setup_intent_data": {"metadata": {"user_id": str(user_id)}},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },  # type: ignore[arg-type]  # built as a plain dict; the TypedDict is only a hint
        )
    except stripe.StripeError as exc:
        raise _setup_failed(exc, "setup checkout create", user_id=user_id) from exc
    return Checkout(checkout_id=session.id, url=session.url or "")


def card_from_setup(*, setup_intent_id: str, user_id: int) -> SavedCard:
    """What a completed setup saved: the SetupIntent's customer and payment method, with the card's brand,
    last four digits and expiry (GET /v1/setup_intents/{id}?expand[]=payment_method)."""
    try:
        intent = _client().v1.setup_intents.retrieve(setup_intent_id, params={"expand": ["payment_method"]})
    except stripe.StripeError as exc:
        raise _setup_failed(exc, "setup intent lookup", user_id=user_id) from exc
    if intent.status != "succeeded" or not intent.payment_method:
        raise ProviderError(lazy_format(MSG_CARD_SETUP_FAILED, provider="Stripe"), retryable=False,
                            detail=f"SetupIntent {setup_intent_id} is {intent.status}, not succeeded")
    method = intent.payment_method
    card = getattr(method, "card", None) if not isinstance(method, str) else None
    customer = intent.customer if isinstance(intent.customer, str) else getattr(intent.customer, "id", "")
    return SavedCard(
        customer_id=customer or "", payment_method_id=method if isinstance(method, str) else method.id,
        brand=getattr(card, "brand", "") or "", last4=getattr(card, "last4", "") or "",
        exp_month=getattr(card, "exp_month", None), exp_year=getattr(card, "exp_year", None),
    )


def card_detach(*, payment_method_id: str) -> None:
    """Remove a saved card from its customer (POST /v1/payment_methods/{id}/detach)."""
    try:
        _client().v1.payment_methods.detach(payment_method_id)
    except stripe.StripeError as exc:
        logger.warning("Stripe could not detach payment method %s: %s: %s", payment_method_id, type(exc).__name__, exc)


def _charge_answer(intent: dict, *, failure_code: str = "") -> OffSessionCharge:
    status = intent.get("status")
    if status == "succeeded":
        state = "paid"
    elif status in ("processing", "requires_capture"):
        state = "processing"
    else:  # requires_payment_method (declined), requires_action (authentication needed), canceled
        state = "failed"
        error = intent.get("last_payment_error") or {}
        failure_code = failure_code or error.get("code") or ("authentication_required" if status == "requires_action" else str(status))
    return OffSessionCharge(state=state, payment_id=str(intent.get("id") or ""), amount_cents=intent.get("amount_received") or intent.get("amount"),
                            currency=intent.get("currency"), failure_code=failure_code)


def offsession_charge(order, *, customer_id: str, payment_method_id: str, amount_cents: int, idempotency_key: str) -> OffSessionCharge:
    """Charge a saved card without the user present: a PaymentIntent created with confirm=true and
    off_session=true. The idempotency key makes a retry (after a cut-off answer or a killed process)
    return the same PaymentIntent instead of charging again. A decline or a bank asking for authentication
    is an answer (state failed), not an exception; ProviderError means the outcome is unknown."""
    try:
        intent = _client().v1.payment_intents.create(
            params={
                "amount": amount_cents, "currency": order.currency, "customer": customer_id,
                "payment_method": payment_method_id, "off_session": True, "confirm": True,
                "description": f"SynStar credits, auto top-up {order.order_no}",
                "metadata": {"order_no": order.order_no, "source": AUTO_TOPUP_SOURCE},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.CardError as exc:
        body = exc.json_body if isinstance(exc.json_body, dict) else {}
        error = body.get("error") or {}
        intent_body = error.get("payment_intent") or {"id": "", "status": "requires_payment_method"}
        logger.info("Stripe declined auto top-up %s: %s (%s)", order.order_no, exc.code, getattr(exc, "request_id", ""))
        return _charge_answer(intent_body, failure_code=str(error.get("code") or exc.code or "card_declined"))
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_CHARGE_FAILED, order=order, action="off-session charge") from exc
    return _charge_answer(intent.to_dict())


def _payment_intent_lookup(order) -> PaymentStatus:
    try:
        intent = _client().v1.payment_intents.retrieve(order.checkout_id)
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_LOOKUP_FAILED, order=order, action="payment intent lookup") from exc
    answer = _charge_answer(intent.to_dict())
    state = {"paid": "paid", "processing": "open"}.get(answer.state, "cancelled" if intent.status == "canceled" else "failed")
    return PaymentStatus(state=state, amount_cents=answer.amount_cents, currency=answer.currency, payment_id=answer.payment_id)


def refund_create(order, *, amount_cents: int, idempotency_key: str) -> str:
    """Refund part of the order's payment. The idempotency key is also put in the refund's metadata, so
    the webhooks that report this refund back are recognised as ours whatever order they arrive in."""
    try:
        refund = _client().v1.refunds.create(
            params={"payment_intent": order.payment_id, "amount": amount_cents,
                    "metadata": {"order_no": order.order_no, "refund_key": idempotency_key}},
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        raise _failed(exc, MSG_REFUND_FAILED, order=order, action="refund") from exc
    return refund.id


def webhook_verify(body: bytes, headers) -> dict:
    signature = headers.get("Stripe-Signature")
    if not signature or not settings.STRIPE_WEBHOOK_SECRET:
        raise SignatureInvalid(_("Missing Stripe-Signature header."))
    try:
        stripe.Webhook.construct_event(body, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise SignatureInvalid(lazy_format(_("Stripe signature check failed: %(exc)s"), exc=exc)) from None
    # The library refuses stale timestamps only; a timestamp far in the future is as suspect (a replay
    # prepared in advance), so the tolerance applies both ways.
    stamps = [p[2:] for p in signature.split(",") if p.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + TOLERANCE_SECONDS:
        raise SignatureInvalid(_("Stripe signature timestamp is outside the tolerance."))
    try:
        payload = json.loads(body)
    except ValueError:
        raise SignatureInvalid(_("The webhook body is not JSON.")) from None
    if not isinstance(payload, dict):
        raise SignatureInvalid(_("The webhook body is not a Stripe event."))
    return payload


def event_identity(payload: dict) -> tuple[str, str]:
    return payload["id"], payload["type"]


def _session(action):
    def parse(obj: dict) -> ProviderEvent | None:
        if obj.get("mode") == "setup":
            return _setup_session(obj) if callable(action) else None  # only completion matters for a setup
        return ProviderEvent(
            action=action(obj) if callable(action) else action,
            order_no=(obj.get("metadata") or {}).get("order_no") or obj.get("client_reference_id"),
            checkout_id=obj.get("id"),
            payment_id=obj.get("payment_intent"),
            amount_cents=obj.get("amount_total"),
            currency=obj.get("currency"),
        )

    return parse


def _setup_session(obj: dict) -> ProviderEvent | None:
    """checkout.session.completed in setup mode: a card was saved. The session names the SetupIntent (its
    payment method is looked up from it) and the customer; client_reference_id names our user."""
    if obj.get("status") != "complete":
        return None
    return ProviderEvent(
        action=CARD_SAVED, checkout_id=obj.get("id"),
        extra={"setup_intent": _id(obj.get("setup_intent")), "customer": _id(obj.get("customer")),
               "user_ref": obj.get("client_reference_id") or ""},
    )


def _id(value) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def _payment_intent(action):
    """payment_intent.succeeded / payment_failed / canceled, for our off-session charges only: the
    PaymentIntents that Checkout creates are reported by their Checkout Session's events (a declined card in
    Checkout can still be retried there, so it is no failure of the order)."""

    def parse(obj: dict) -> ProviderEvent | None:
        metadata = obj.get("metadata") or {}
        if metadata.get("source") != AUTO_TOPUP_SOURCE:
            return None
        error = obj.get("last_payment_error") or {}
        return ProviderEvent(
            action=action, order_no=metadata.get("order_no"), payment_id=obj.get("id"),
            amount_cents=obj.get("amount_received") if action == PAID else obj.get("amount"), currency=obj.get("currency"),
            extra={"failure_code": error.get("code") or error.get("decline_code") or ""},
        )

    return parse


def _charge_refunded(obj: dict) -> ProviderEvent:
    """charge.refunded: `amount_refunded` is the cumulative figure for the whole charge."""
    return ProviderEvent(
        action=REFUNDED, payment_id=obj.get("payment_intent"), refund_total_cents=obj.get("amount_refunded"),
        refund_id=f"stripe-charge:{obj.get('id')}", currency=obj.get("currency"),
    )


# Refund.status: pending | requires_action | succeeded | failed | canceled
_REFUND_STATUS = {"succeeded": REFUND_SUCCEEDED, "pending": REFUND_PENDING, "requires_action": REFUND_PENDING,
                  "failed": REFUND_FAILED, "canceled": REFUND_FAILED}


def _refund_object(obj: dict) -> ProviderEvent:
    """refund.created / refund.updated / refund.failed / charge.refund.updated: one refund object."""
    return ProviderEvent(
        action=REFUND_UPDATED, payment_id=obj.get("payment_intent"), refund_cents=obj.get("amount"),
        refund_id=obj.get("id"), refund_status=_REFUND_STATUS.get(str(obj.get("status")), REFUND_PENDING),
        refund_key=(obj.get("metadata") or {}).get("refund_key") or None, currency=obj.get("currency"),
    )


def _dispute(event_type: str):
    """Disputes move money on funds_withdrawn (or a dispute created past the inquiry stage) and give it back
    on funds_reinstated or when closed as won. Inquiries (warning_*) move no money and change nothing."""

    def parse(obj: dict) -> ProviderEvent | None:
        status = obj.get("status") or ""
        if event_type == "charge.dispute.created":
            action = None if status.startswith("warning_") else DISPUTE_LOST
        elif event_type == "charge.dispute.funds_withdrawn":
            action = DISPUTE_LOST
        elif event_type == "charge.dispute.funds_reinstated":
            action = DISPUTE_WON
        elif event_type == "charge.dispute.closed":
            action = {"won": DISPUTE_WON, "lost": DISPUTE_LOST}.get(status)
        else:
            action = None
        if action is None:
            return None
        return ProviderEvent(
            action=action, payment_id=obj.get("payment_intent"), refund_cents=obj.get("amount"),
            dispute_id=obj.get("id"), currency=obj.get("currency"),
        )

    return parse


EVENT_HANDLERS = {
    "checkout.session.completed": _session(lambda o: PAID if o.get("payment_status") == "paid" else PENDING),
    "checkout.session.async_payment_succeeded": _session(PAID),
    "checkout.session.async_payment_failed": _session(FAILED),
    "checkout.session.expired": _session(CANCELLED),
    "payment_intent.succeeded": _payment_intent(PAID),
    "payment_intent.payment_failed": _payment_intent(FAILED),
    "payment_intent.canceled": _payment_intent(CANCELLED),
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund_object,
    "refund.created": _refund_object,
    "refund.updated": _refund_object,
    "refund.failed": _refund_object,
    **{f"charge.dispute.{name}": _dispute(f"charge.dispute.{name}")
       for name in ("created", "funds_withdrawn", "funds_reinstated", "closed")},
}


def event_parse(payload: dict) -> ProviderEvent | None:
    handler = EVENT_HANDLERS.get(str(payload.get("type")))
    return handler(payload["data"]["object"]) if handler else None

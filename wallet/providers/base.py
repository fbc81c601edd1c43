"""Provider-neutral values that the client modules return."""

from dataclasses import dataclass, field

from synstar.errors import InvalidRequest, SynstarError


class SignatureInvalid(InvalidRequest):
    code = "invalid_signature"
    default_message = "The webhook signature is missing or invalid."


class ProviderError(SynstarError):
    """A provider call that did not succeed. `retryable` is False when the provider answered and refused
    (asking again with the same idempotency key gives the same refusal), True when the outcome is unknown
    (network error, timeout, 5xx): the call may or may not have taken effect."""

    status = 502
    type = "api_error"
    code = "payment_provider_error"
    default_message = "The payment provider could not be reached; please try again."

    def __init__(self, message: str | None = None, *, retryable: bool = True, **kwargs):
        super().__init__(message, **kwargs)
        self.retryable = retryable


@dataclass(frozen=True)
class Checkout:
    checkout_id: str
    url: str


@dataclass(frozen=True)
class PaymentStatus:
    state: str  # paid | open | failed | cancelled
    amount_cents: int | None = None
    currency: str | None = None
    payment_id: str = ""


# What a webhook event means for an order.
PAID, PENDING, FAILED, CANCELLED = "paid", "pending", "failed", "cancelled"
# Refunds: REFUNDED carries the provider's cumulative refunded figure (Stripe charge.refunded);
# REFUND_UPDATED carries one refund object with its own id, amount and status (succeeded/pending/failed).
REFUNDED, REFUND_UPDATED = "refunded", "refund_updated"
# Disputes: money left (claw back) or came back (restore). Inquiries that move no money are not events.
DISPUTE_LOST, DISPUTE_WON = "dispute_lost", "dispute_won"
DISPUTED = DISPUTE_LOST  # the older name
REFUND_SUCCEEDED, REFUND_PENDING, REFUND_FAILED = "succeeded", "pending", "failed"


@dataclass(frozen=True)
class ProviderEvent:
    action: str
    order_no: str | None = None
    checkout_id: str | None = None
    payment_id: str | None = None
    amount_cents: int | None = None
    currency: str | None = None
    # Refunds: a cumulative total (Stripe charge.refunded) or one refund's amount with its id.
    refund_total_cents: int | None = None
    refund_cents: int | None = None
    refund_id: str | None = None
    refund_status: str | None = None  # REFUND_SUCCEEDED | REFUND_PENDING | REFUND_FAILED
    refund_key: str | None = None  # the idempotency key / request id we sent, echoed back (our own refunds)
    # True when this refund object is how the provider reports refunds made outside our API (Airwallex);
    # False when a cumulative figure does that instead (Stripe's charge.refunded) and the object only
    # confirms or fails a refund.
    refund_counts: bool = False
    # Disputes: the provider's dispute id and the amount in dispute.
    dispute_id: str | None = None
    extra: dict = field(default_factory=dict)

"""Provider-neutral values that the client modules return."""

from dataclasses import dataclass, field

from synstar.errors import InvalidRequest, SynstarError


class SignatureInvalid(InvalidRequest):
    code = "invalid_signature"
    default_message = "The webhook signature is missing or invalid."


class ProviderError(SynstarError):
    status = 502
    type = "api_error"
    code = "payment_provider_error"
    default_message = "The payment provider could not be reached; please try again."


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
PAID, PENDING, FAILED, CANCELLED, REFUNDED, DISPUTED = "paid", "pending", "failed", "cancelled", "refunded", "disputed"


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
    extra: dict = field(default_factory=dict)

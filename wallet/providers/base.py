"""Provider-neutral values that the client modules return."""

from dataclasses import dataclass, field

from synstar.errors import InvalidRequest, SynstarError


class SignatureInvalid(InvalidRequest):
    code = "invalid_signature"
    default_message = "The webhook signature is missing or invalid."


class ProviderError(SynstarError):
    """A payment provider refused or could not be reached.

    `message` is ours, safe to show to a user (pages and API answers). `detail` is what the provider or
    the network said: it goes to the log and to the order (admin), never to a user."""

    status = 502
    type = "api_error"
    code = "payment_provider_error"
    default_message = "The payment provider could not be reached; please try again in a few minutes."

    def __init__(self, message: str | None = None, *, detail: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.detail = detail or self.message


# What a user reads when a provider call fails: our words, never the provider's text.
CHECKOUT_FAILED = (
    "We could not start the payment with {provider}. Nothing was charged; please try again in a few minutes "
    "or choose another payment method."
)
LOOKUP_FAILED = "We could not check the payment status with {provider}; it will be checked again automatically."
REFUND_FAILED = "{provider} did not accept the refund; nothing was refunded. The provider's answer is in the server log."


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

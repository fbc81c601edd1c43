"""Provider-neutral values that the client modules return."""

from dataclasses import dataclass, field

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from synstar.errors import InvalidRequest, SynstarError


class SignatureInvalid(InvalidRequest):
    code = "invalid_signature"
    default_message = _("The webhook signature is missing or invalid.")


class ProviderError(SynstarError):
    """A payment provider refused or could not be reached.

    `message` is ours, safe to show to a user (pages and API answers). `detail` is what the provider or
    the network said: it goes to the log and to the order (admin), never to a user. `retryable` is False
    when the provider answered and refused (asking again with the same idempotency key gives the same
    refusal), True when the outcome is unknown (network error, timeout, 5xx): the call may or may not
    have taken effect."""

    status = 502
    type = "api_error"
    code = "payment_provider_error"
    default_message = _("The payment provider could not be reached; please try again in a few minutes.")

    def __init__(self, message: str | Promise | None = None, *, detail: str = "", code: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, code=code)
        self.detail = detail or str(self.message)
        self.retryable = retryable


# What a user reads when a provider call fails: our words, never the provider's text.
# Translated when read (lazy_format(MSG_..., provider="Stripe")).
MSG_CHECKOUT_FAILED = _(
    "We could not start the payment with %(provider)s. Nothing was charged; please try again in a few minutes "
    "or choose another payment method."
)
MSG_LOOKUP_FAILED = _("We could not check the payment status with %(provider)s; it will be checked again automatically.")
MSG_CARD_SETUP_FAILED = _("We could not start saving a card with %(provider)s; please try again in a few minutes.")
MSG_CHARGE_FAILED = _("We could not reach %(provider)s to charge the saved card; it will be tried again automatically.")
MSG_REFUND_FAILED = _("%(provider)s did not accept the refund; nothing was refunded. The provider's answer is in the server log.")


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
# Auto top-up: a card was saved (Stripe Checkout in setup mode completed); no order is involved.
CARD_SAVED = "card_saved"


@dataclass(frozen=True)
class SavedCard:
    """A card saved for off-session charges: the provider's customer and payment method, and what the
    user recognises it by."""

    customer_id: str
    payment_method_id: str
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class OffSessionCharge:
    """The provider's answer to an off-session charge of a saved card. state: paid | processing | failed;
    `failure_code` is the provider's code for a failed one (card_declined, authentication_required...)."""

    state: str
    payment_id: str = ""
    amount_cents: int | None = None
    currency: str | None = None
    failure_code: str = ""


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
    dispute_stage: str = ""  # Airwallex: CHARGEBACK, PRE_ARBITRATION, ... (a dispute won at one stage can be lost at the next)
    extra: dict = field(default_factory=dict)

"""Top-up orders (bills): bonus, limits, creation, completion, failure and reconciliation with the
providers (DESIGN.md section 7)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from synstar.accounts.selectors import TOP_UP, account_action_check
from synstar.db import atomic_with_retry
from synstar.errors import Conflict, InvalidRequest
from synstar.i18n import lazy_format
from synstar.money import (
    InvalidAmount,
    format_usd,
    parse_usd,
    round_half_up,
    to_cents,
)
from wallet import providers
from wallet.models import (
    BonusRule,
    PaymentMethod,
    SystemAccount,
    TopUpOrder,
    Transaction,
)
from wallet.services.ledger import Line, main_account, posting_create, system_account_id

logger = logging.getLogger(__name__)

PAYMENT_ACCOUNTS = {
    "stripe": SystemAccount.PAYMENTS_STRIPE,
    "airwallex": SystemAccount.PAYMENTS_AIRWALLEX,
    "sandbox": SystemAccount.PAYMENTS_SANDBOX,
}


@dataclass
class TopUpHooks:
    """What other apps do, in the same transaction, when a top-up completes or is refunded (or a refund is
    undone). They register in their AppConfig.ready() (referrals: invite rewards accrue and reverse), so
    the wallet never imports them; the hooks are called in registration order."""

    completed: list[Callable[..., object]] = field(default_factory=list)
    refunded: list[Callable[..., object]] = field(default_factory=list)
    closed: list[Callable[..., object]] = field(default_factory=list)  # Pending -> Failed / Cancelled


TOPUP_HOOKS = TopUpHooks()


def topup_hooks_register(*, completed: Callable[..., object] | None = None, refunded: Callable[..., object] | None = None,
                         closed: Callable[..., object] | None = None) -> None:
    """Register `completed(order=...)`, `refunded(order=...)` and/or `closed(order=...)`; registering the
    same function twice is harmless."""
    if completed is not None and completed not in TOPUP_HOOKS.completed:
        TOPUP_HOOKS.completed.append(completed)
    if refunded is not None and refunded not in TOPUP_HOOKS.refunded:
        TOPUP_HOOKS.refunded.append(refunded)
    if closed is not None and closed not in TOPUP_HOOKS.closed:
        TOPUP_HOOKS.closed.append(closed)


# Orders that were paid and credited: they can be refunded, and a late "paid" event changes nothing.
REFUNDABLE = (TopUpOrder.Status.COMPLETED, TopUpOrder.Status.PARTIALLY_REFUNDED, TopUpOrder.Status.REFUNDED)


class PaymentMismatch(Conflict):
    code = "payment_mismatch"


# --- bonus and limits -----------------------------------------------------------------------------


def bonus_for(amount: int) -> int:
    """Bonus credits for a top-up of `amount` nanos: an exact rule, else the highest `above` rule."""
    rules = list(BonusRule.objects.filter(is_active=True))
    exact = [r for r in rules if r.match == BonusRule.Match.EXACT and r.amount == amount]
    above = sorted((r for r in rules if r.match == BonusRule.Match.ABOVE and amount > r.amount), key=lambda r: r.amount)
    rule = exact[0] if exact else (above[-1] if above else None)
    if rule is None:
        return 0
    return rule.bonus_fixed + round_half_up(Fraction(amount) * Fraction(rule.bonus_percent) / 100)


def topup_limits() -> tuple[int, int]:
    return parse_usd(settings.TOPUP_MIN_USD), parse_usd(settings.TOPUP_MAX_USD)


def topup_presets() -> list[int]:
    return [parse_usd(p) for p in settings.TOPUP_PRESETS_USD]


def topup_validate(amount: int) -> None:
    minimum, maximum = topup_limits()
    if amount < minimum:
        raise InvalidAmount(lazy_format(_("The minimum top-up is $%(amount)s."), amount=format_usd(minimum)), code="amount_too_small")
    if amount > maximum:
        raise InvalidAmount(
            lazy_format(_("For top-ups above $%(amount)s, please contact support."), amount=format_usd(maximum, grouping=True)),
            code="amount_too_large",
        )
    try:
        to_cents(amount)
    except InvalidAmount:
        raise InvalidAmount(_("Top-up amounts are whole cents, e.g. 25.50."), code="invalid_amount") from None


def methods_for_user(*, user) -> list[tuple[PaymentMethod, str]]:
    """Enabled methods open to the user's country, each with the provider that will take it."""
    country = user.country.code if user.country else ""
    out = []
    for method in PaymentMethod.objects.filter(is_enabled=True):
        provider = providers.provider_for_method(method)
        if provider and method.available_in(country):
            out.append((method, provider))
    return out


# --- orders ---------------------------------------------------------------------------------------


def _order_no() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return f"SS{timezone.now():%y%m%d}" + "".join(secrets.choice(alphabet) for _ in range(8))


def order_no_generate() -> str:
    """A new order number (auto top-up orders are created by wallet/services/autotopup.py)."""
    return _order_no()


def order_create(*, user, amount: int, method_code: str, base_url: str = "") -> TopUpOrder:
    """Create a pending order and its checkout at the provider; returns the order with checkout_url."""
    account_action_check(user=user, action=TOP_UP)
    user.refresh_from_db(fields=["country"])
    topup_validate(amount)
    available = {m.code: (m, p) for m, p in methods_for_user(user=user)}
    if method_code not in available:
        raise InvalidRequest(_("This payment method is not available for your account's country."), code="method_not_available")
    method, provider = available[method_code]
    order = TopUpOrder.objects.create(
        order_no=_order_no(), user=user, method=method, provider=provider, amount=amount, bonus=bonus_for(amount)
    )
    bills = base_url + reverse("console:bills")
    try:
        checkout = providers.client_for(provider).checkout_create(
            order, amount_cents=to_cents(amount), success_url=f"{bills}?paid={order.order_no}", cancel_url=f"{bills}?cancelled={order.order_no}"
        )
    except providers.ProviderError as exc:
        # The user reads our words (failure_reason); the provider's own answer is kept for admins.
        TopUpOrder.objects.filter(pk=order.pk).update(status=TopUpOrder.Status.FAILED, failure_reason=exc.message[:255],
                                                      provider_error=exc.detail[:4000], closed_at=timezone.now())
        raise
    TopUpOrder.objects.filter(pk=order.pk).update(checkout_id=checkout.checkout_id, checkout_url=checkout.url)
    order.checkout_id, order.checkout_url = checkout.checkout_id, checkout.url
    return order


@atomic_with_retry
def order_complete(*, order_id: int, amount_cents: int, currency: str, payment_id: str = "") -> TopUpOrder:
    """The provider says paid: check amount and currency, credit base + bonus once, mark Completed."""
    order = TopUpOrder.objects.select_for_update().get(pk=order_id)
    if order.status in REFUNDABLE:
        return order
    if amount_cents != to_cents(order.amount) or (currency or "").lower() != order.currency:
        raise PaymentMismatch(
            lazy_format(_("Order %(order_no)s: provider says %(amount_cents)s %(currency)s, order is %(to_cents)s %(currency2)s; not credited."), order_no=order.order_no, amount_cents=amount_cents, currency=currency, to_cents=to_cents(order.amount), currency2=order.currency)
        )
    if order.status in (TopUpOrder.Status.FAILED, TopUpOrder.Status.CANCELLED):
        logger.warning("order %s was %s but the provider reports it paid; crediting it", order.order_no, order.status)
    now = timezone.now()
    order.status, order.paid_at = TopUpOrder.Status.PAID, order.paid_at or now
    order.payment_id = payment_id or order.payment_id
    account = main_account(user=order.user)
    lines = [Line(system_account_id(PAYMENT_ACCOUNTS[order.provider]), -order.amount), Line(account.pk, order.amount + order.bonus)]
    if order.bonus:
        lines.append(Line(system_account_id(SystemAccount.BONUS), -order.bonus))
    posting_create(kind=Transaction.Kind.TOPUP, idempotency_key=f"topup:{order.order_no}", lines=lines,
          description=f"Top-up {order.order_no}" + (f" (incl. ${format_usd(order.bonus)} bonus)" if order.bonus else ""))
    order.status, order.completed_at, order.closed_at = TopUpOrder.Status.COMPLETED, now, now
    order.save(update_fields=["status", "paid_at", "payment_id", "completed_at", "closed_at"])
    _after_completion(order)
    return order


def _after_completion(order: TopUpOrder) -> None:
    """What follows a completed top-up, in the same transaction: every registered hook (invite rewards)."""
    for hook in TOPUP_HOOKS.completed:
        hook(order=order)


@atomic_with_retry
def order_close(*, order_id: int, status: str, reason: str = "") -> TopUpOrder:
    """Pending -> Failed or Cancelled (compare-and-swap: a completed order is never un-completed)."""
    assert status in (TopUpOrder.Status.FAILED, TopUpOrder.Status.CANCELLED)
    closed = TopUpOrder.objects.filter(pk=order_id, status=TopUpOrder.Status.PENDING).update(
        status=status, failure_reason=reason[:255], closed_at=timezone.now()
    )
    order = TopUpOrder.objects.get(pk=order_id)
    if closed:
        for hook in TOPUP_HOOKS.closed:  # auto top-up: a failed charge turns it off
            hook(order=order)
    return order


# --- reconciliation -------------------------------------------------------------------------------


def orders_reconcile(*, older_than: timedelta | None = None, limit: int = 200) -> dict[str, int]:
    """Ask the provider about open (Pending/Paid) orders and complete, fail or cancel them.

    No order starves: each open order carries its next check time. A run takes the orders that are
    due (never checked first, newest first, then by next check), and every order checked is scheduled
    again with a back-off (ORDER_RECONCILE_BACKOFF_SECONDS doubling up to ..._MAX_SECONDS), so
    abandoned orders cost less and less while new ones are looked at on the next run. An order the
    provider still reports open after its checkout lifetime (ORDER_CHECKOUT_LIFETIME_SECONDS; Stripe
    Checkout Sessions expire after 24 hours) is closed at the provider and Cancelled with a reason.
    """
    now = timezone.now()
    older_than = older_than if older_than is not None else timedelta(seconds=settings.ORDER_RECONCILE_AFTER_SECONDS)
    counts = {"completed": 0, "cancelled": 0, "failed": 0, "open": 0, "errors": 0}
    counts["cancelled"] += _orders_without_checkout_close(cutoff=now - older_than, now=now)
    for order in _orders_due_claim(cutoff=now - older_than, now=now, limit=limit):
        try:
            counts[_order_reconcile(order, now=now)] += 1
        except Exception:
            counts["errors"] += 1
            logger.exception("reconciliation of order %s failed", order.order_no)
        finally:
            TopUpOrder.objects.filter(pk=order.pk).update(
                last_checked_at=now, reconcile_checks=F("reconcile_checks") + 1,
                next_check_at=now + _reconcile_backoff(order.reconcile_checks + 1),
            )
    return counts


OPEN_STATUSES = (TopUpOrder.Status.PENDING, TopUpOrder.Status.PAID)
RECONCILE_CLAIM = timedelta(minutes=10)  # a run that dies mid-batch leaves its orders due again after this


def _reconcile_backoff(checks: int) -> timedelta:
    base, cap = settings.ORDER_RECONCILE_BACKOFF_SECONDS, settings.ORDER_RECONCILE_BACKOFF_MAX_SECONDS
    return timedelta(seconds=min(base * 2 ** min(max(checks - 1, 0), 20), cap))


def _orders_due_claim(*, cutoff, now, limit: int) -> list[TopUpOrder]:
    """Take up to `limit` due orders (skipping rows another run holds) and push their next check a little,
    so two runs at once do not ask about the same orders."""
    with transaction.atomic():
        ids = list(
            TopUpOrder.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN_STATUSES, created_at__lte=cutoff)
            .exclude(next_check_at__gt=now)  # never checked (NULL), or due
            .exclude(checkout_id="")
            .order_by(F("next_check_at").asc(nulls_first=True), "-created_at")
            .values_list("pk", flat=True)[:limit]
        )
        TopUpOrder.objects.filter(pk__in=ids).update(next_check_at=now + RECONCILE_CLAIM)
    return list(TopUpOrder.objects.filter(pk__in=ids).order_by(F("last_checked_at").asc(nulls_first=True), "-created_at"))


def _order_reconcile(order: TopUpOrder, *, now) -> str:
    """Look one order up at its provider and act on the answer; returns the counter to increment."""
    client = providers.client_for(order.provider)
    status = client.checkout_lookup(order)
    if status.state == "paid":
        order_complete(order_id=order.pk, amount_cents=status.amount_cents, currency=status.currency, payment_id=status.payment_id)
        return "completed"
    if status.state in ("cancelled", "failed"):
        order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED if status.state == "cancelled" else TopUpOrder.Status.FAILED,
                    reason=f"{order.provider}: {status.state} (reconciliation)")
        return status.state
    lifetime = timedelta(seconds=settings.ORDER_CHECKOUT_LIFETIME_SECONDS)
    if order.created_at <= now - lifetime:
        # Close it at the provider first, so the abandoned checkout can no longer be paid; if the
        # shopper paid a moment ago the provider refuses, and the next check completes the order.
        client.checkout_cancel(order)
        hours = settings.ORDER_CHECKOUT_LIFETIME_SECONDS // 3600
        order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED,
                    reason=f"Not paid within {hours} hours; the checkout was closed.")
        return "cancelled"
    return "open"


def _orders_without_checkout_close(*, cutoff, now) -> int:
    """An order whose checkout was never created (the process died in between) can never be paid. (An auto
    top-up's charge may have reached Stripe: the auto top-up resume task asks again with the same key.)"""
    return TopUpOrder.objects.filter(status=TopUpOrder.Status.PENDING, checkout_id="", created_at__lte=cutoff,
                                     source=TopUpOrder.Source.CHECKOUT).update(
        status=TopUpOrder.Status.CANCELLED, failure_reason="No checkout was created for this order.", closed_at=now
    )


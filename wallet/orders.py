"""Services for top-up orders (bills): bonus, creation, completion, failure, refunds, webhooks,
reconciliation (DESIGN.md section 7)."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from synstar.db import atomic_with_retry
from synstar.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from synstar.money import InvalidAmount, format_usd, from_cents, parse_usd, round_half_up, to_cents
from wallet import providers
from wallet.models import Account, BonusRule, PaymentMethod, Refund, SystemAccount, TopUpOrder, Transaction, WebhookEvent
from wallet.providers.base import (
    CANCELLED,
    DISPUTE_LOST,
    DISPUTE_WON,
    FAILED,
    PAID,
    PENDING,
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    REFUND_UPDATED,
    REFUNDED,
    ProviderEvent,
)
from wallet.services import Line, _post, main_account, system_account_id

logger = logging.getLogger(__name__)

PAYMENT_ACCOUNTS = {
    "stripe": SystemAccount.PAYMENTS_STRIPE,
    "airwallex": SystemAccount.PAYMENTS_AIRWALLEX,
    "sandbox": SystemAccount.PAYMENTS_SANDBOX,
}


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
        raise InvalidAmount(f"The minimum top-up is ${format_usd(minimum)}.", code="amount_too_small")
    if amount > maximum:
        raise InvalidAmount(
            f"For top-ups above ${format_usd(maximum, grouping=True)}, please contact support.",
            code="amount_too_large",
        )
    try:
        to_cents(amount)
    except InvalidAmount:
        raise InvalidAmount("Top-up amounts are whole cents, e.g. 25.50.", code="invalid_amount") from None


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


def order_create(*, user, amount: int, method_code: str, base_url: str = "") -> TopUpOrder:
    """Create a pending order and its checkout at the provider; returns the order with checkout_url."""
    user.refresh_from_db(fields=["status", "review_reason", "country"])  # a review may have just started
    if user.status == user.Status.SUSPENDED:
        raise PermissionDenied("The account is suspended; contact support.", code="account_suspended")
    if user.status == user.Status.UNDER_REVIEW and user.review_reason == user.ReviewReason.PAYMENT:
        raise PermissionDenied("Top-ups are paused while the account is under payment review.", code="account_under_review")
    topup_validate(amount)
    available = {m.code: (m, p) for m, p in methods_for_user(user=user)}
    if method_code not in available:
        raise InvalidRequest("This payment method is not available for your account's country.", code="method_not_available")
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
            f"Order {order.order_no}: provider says {amount_cents} {currency}, order is "
            f"{to_cents(order.amount)} {order.currency}; not credited."
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
    _post(kind=Transaction.Kind.TOPUP, idempotency_key=f"topup:{order.order_no}", lines=lines,
          description=f"Top-up {order.order_no}" + (f" (incl. ${format_usd(order.bonus)} bonus)" if order.bonus else ""))
    order.status, order.completed_at, order.closed_at = TopUpOrder.Status.COMPLETED, now, now
    order.save(update_fields=["status", "paid_at", "payment_id", "completed_at", "closed_at"])
    _after_completion(order)
    return order


def _after_completion(order: TopUpOrder) -> None:
    """What follows a completed top-up, in the same transaction: the inviter's reward."""
    from referrals.services import reward_accrue

    reward_accrue(order=order)


@atomic_with_retry
def order_close(*, order_id: int, status: str, reason: str = "") -> TopUpOrder:
    """Pending -> Failed or Cancelled (compare-and-swap: a completed order is never un-completed)."""
    assert status in (TopUpOrder.Status.FAILED, TopUpOrder.Status.CANCELLED)
    TopUpOrder.objects.filter(pk=order_id, status=TopUpOrder.Status.PENDING).update(
        status=status, failure_reason=reason[:255], closed_at=timezone.now()
    )
    return TopUpOrder.objects.get(pk=order_id)


# --- refunds --------------------------------------------------------------------------------------
#
# Every refund of an order is decided under that order's row lock (then the user's account row: the
# lock order is order, then account). Amounts come from the order's own counters, read after the lock.
# Admin refunds are recorded before the provider is called (status pending, credits already removed,
# the idempotency key sent to the provider stored as `provider_key`); the provider call happens outside
# any transaction; the answer is recorded afterwards. A process that dies in between leaves a pending
# refund that the echo webhook or `refunds_resume` finishes. Provider refunds arrive either as a
# cumulative figure (Stripe charge.refunded: only what lies above the order's watermark counts) or as
# one refund object (Airwallex: counted once by its id). Failed refunds and won disputes give the
# removed credits back, once.

REFUNDABLE = (TopUpOrder.Status.COMPLETED, TopUpOrder.Status.PARTIALLY_REFUNDED, TopUpOrder.Status.REFUNDED)


class NothingRefundable(Conflict):
    code = "nothing_refundable"
    default_message = "Nothing left to refund: the order's credits were used or already refunded."


def _order_lock(order_id: int) -> TopUpOrder:
    """Lock one order row: every refund, dispute and restore of the order is decided under it."""
    return TopUpOrder.objects.select_for_update().get(pk=order_id)


def _account_lock(order: TopUpOrder) -> Account:
    main_account(user=order.user)  # created if missing, outside the lock
    return Account.objects.select_for_update().get(user=order.user, kind=Account.Kind.MAIN)


def _refund_status(*, amount: int, cash_refunded: int) -> str:
    if cash_refunded <= 0:
        return TopUpOrder.Status.COMPLETED
    if cash_refunded >= amount:
        return TopUpOrder.Status.REFUNDED
    return TopUpOrder.Status.PARTIALLY_REFUNDED


def _order_counters_add(order: TopUpOrder, *, base: int, bonus: int, cash: int, watermark: int = 0) -> None:
    """Apply a refund (positive) or a restore (negative) to the locked order's counters and status."""
    order.refunded_amount += base
    order.bonus_clawed += bonus
    order.cash_refunded = max(order.cash_refunded + cash, 0)
    order.refund_watermark = max(order.refund_watermark + watermark, 0)
    order.status = _refund_status(amount=order.amount, cash_refunded=order.cash_refunded)
    order.save(update_fields=["refunded_amount", "bonus_clawed", "cash_refunded", "refund_watermark", "status"])


def _claw_back(*, order: TopUpOrder, account: Account, cash: int | None, admin: bool) -> tuple[int, int, int, int]:
    """(bonus_take, base_take, cash_out, shortfall) for refunding `cash` of the locked order.

    The order's remaining bonus goes first, then base credits up to what is still available. Admin: the
    cash refunded is the base credits removed (whole cents). Provider/dispute: the cash already went back;
    what cannot be clawed back is a shortfall."""
    available = max(account.balance - account.held, 0)
    bonus_take = min(order.bonus - order.bonus_clawed, available)
    base_left = order.amount - order.refunded_amount
    if admin:
        wanted = base_left if cash is None else min(cash, base_left)
        base_take = min(wanted, available - bonus_take)
        base_take -= base_take % from_cents(1)
        if base_take <= 0:
            raise NothingRefundable()
        return bonus_take, base_take, base_take, 0
    base_take = max(min(cash or 0, base_left, available - bonus_take), 0)
    return bonus_take, base_take, cash or 0, max((cash or 0) - base_take, 0)


def _refund_record(
    *, order: TopUpOrder, account: Account, source: str, key: str, cash: int | None, status: str,
    provider_key: str = "", provider_refund_id: str = "", actor=None, reason: str = "", watermark: int = 0,
) -> Refund:
    """Under the order and account locks: remove the credits, count them on the order, record the refund."""
    admin = source == Refund.Source.ADMIN
    bonus_take, base_take, cash_out, shortfall = _claw_back(order=order, account=account, cash=cash, admin=admin)
    txn = None
    if bonus_take or base_take:
        lines = [Line(account.pk, -(bonus_take + base_take))]
        if bonus_take:
            lines.append(Line(system_account_id(SystemAccount.BONUS), bonus_take))
        if base_take:
            lines.append(Line(system_account_id(SystemAccount.REFUNDS), base_take))
        label = "Dispute" if source == Refund.Source.DISPUTE else "Refund"
        txn = _post(kind=Transaction.Kind.REFUND, idempotency_key=f"refund:{key}", lines=lines,
                    description=f"{label} of {order.order_no}", reason=reason, actor=actor)
    _order_counters_add(order, base=base_take, bonus=bonus_take, cash=cash_out, watermark=cash_out if admin else watermark)
    refund = Refund.objects.create(
        order=order, source=source, status=status, key=key, provider_key=provider_key,
        requested=cash_out if not admin else (cash or base_take), base_removed=base_take, bonus_removed=bonus_take,
        shortfall=shortfall, provider_refund_id=provider_refund_id, transaction=txn, actor=actor, reason=reason,
        closed_at=None if status == Refund.Status.PENDING else timezone.now(),
    )
    _refund_followups(order=order, refund=refund)
    return refund


def _refund_followups(*, order: TopUpOrder, refund: Refund) -> None:
    from referrals.services import reward_reverse

    reward_reverse(order=order)
    if refund.shortfall:
        from synstar.accounts.services import user_status_set

        user_status_set(
            user=order.user, status="under_review", review_reason="payment", actor=None,
            note=f"{refund.get_source_display()} on order {order.order_no} returned ${format_usd(refund.shortfall, places=None)} "
                 "more than could be clawed back.",
        )


def _refund_restore(*, order: TopUpOrder, account: Account, refund: Refund, status: str, reason: str,
                    base: int | None = None, bonus: int | None = None, cash: int | None = None,
                    undo_watermark: bool = False) -> Refund:
    """Under the order and account locks: give back what `refund` removed (or `base` and `bonus` for a
    provider refund counted only through a cumulative figure), once; the refund becomes `status`."""
    base = refund.base_removed if base is None else base
    bonus = refund.bonus_removed if bonus is None else bonus
    cash = refund.requested if cash is None else cash
    txn = None
    if base or bonus:
        lines = [Line(account.pk, base + bonus)]
        if bonus:
            lines.append(Line(system_account_id(SystemAccount.BONUS), -bonus))
        if base:
            lines.append(Line(system_account_id(SystemAccount.REFUNDS), -base))
        what = "Dispute won" if status == Refund.Status.REVERSED else "Refund failed"
        txn = _post(kind=Transaction.Kind.REFUND_REVERSAL, idempotency_key=f"refund-restore:{refund.key}", lines=lines,
                    description=f"{what}: credits of {order.order_no} restored", reason=reason)
    _order_counters_add(order, base=-base, bonus=-bonus, cash=-cash, watermark=-cash if undo_watermark else 0)
    Refund.objects.filter(pk=refund.pk).update(
        status=status, base_restored=base, bonus_restored=bonus, restore_transaction=txn,
        failure_reason=reason[:255], closed_at=timezone.now(),
    )
    refund.refresh_from_db()
    return refund


def refund_admin_start(*, order_id: int, key: str, cash: int | None = None, actor=None, reason: str = "") -> tuple[Refund, bool]:
    """Record an admin refund's intent: credits removed, status pending, a fresh provider idempotency key.
    (refund, created); the same `key` again returns the first refund and changes nothing."""
    if cash is not None and cash <= 0:
        raise InvalidAmount("The refund amount must be positive.")
    return _refund_admin_start(order_id=order_id, key=key, cash=cash, actor=actor, reason=reason)


@atomic_with_retry
def _refund_admin_start(*, order_id: int, key: str, cash: int | None, actor, reason: str) -> tuple[Refund, bool]:
    order = _order_lock(order_id)
    existing = Refund.objects.filter(key=key).first()  # read under the lock: a twin request waits, then sees it
    if existing is not None:
        return existing, False
    if order.status not in REFUNDABLE:
        raise Conflict(f"Order {order.order_no} is {order.get_status_display().lower()}; only completed orders are refunded.",
                       code="order_not_refundable")
    account = _account_lock(order)
    refund = _refund_record(order=order, account=account, source=Refund.Source.ADMIN, key=key, cash=cash,
                            status=Refund.Status.PENDING, provider_key=str(uuid.uuid4()), actor=actor, reason=reason)
    return refund, True


def refund_submit(*, refund_id: int) -> Refund:
    """Ask the provider for a pending admin refund (outside any transaction: the echo webhook must be able
    to see the pending refund) and record the answer. Safe to repeat: the same idempotency key is sent."""
    refund = Refund.objects.select_related("order").get(pk=refund_id)
    if refund.status != Refund.Status.PENDING:
        return refund
    order = refund.order
    try:
        provider_refund_id = providers.client_for(order.provider).refund_create(
            order, amount_cents=to_cents(refund.requested), idempotency_key=refund.provider_key
        )
    except providers.ProviderError as exc:
        if exc.retryable:
            logger.warning("refund %s: outcome unknown (%s); it stays pending and will be asked again", refund.key, exc.message)
            raise
        refund_fail(refund_id=refund.pk, reason=exc.message, refused=True)
        raise
    return refund_confirm(refund_id=refund.pk, provider_refund_id=provider_refund_id)


@atomic_with_retry
def refund_confirm(*, refund_id: int, provider_refund_id: str = "") -> Refund:
    """The provider accepted (or reported) our pending refund: pending -> succeeded, once."""
    refund = Refund.objects.get(pk=refund_id)
    _order_lock(refund.order_id)
    Refund.objects.filter(pk=refund_id, status=Refund.Status.PENDING).update(
        status=Refund.Status.SUCCEEDED, closed_at=timezone.now()
    )
    if provider_refund_id:
        Refund.objects.filter(pk=refund_id, provider_refund_id="").update(provider_refund_id=provider_refund_id)
    refund.refresh_from_db()
    return refund


@atomic_with_retry
def refund_fail(*, refund_id: int, reason: str, refused: bool = False) -> Refund:
    """The refund did not (or no longer) return money: give its credits back, once. `refused`: the provider
    refused our request, so it never counted in the provider's cumulative figure either."""
    refund = Refund.objects.get(pk=refund_id)
    order = _order_lock(refund.order_id)
    refund.refresh_from_db()
    if refund.status in (Refund.Status.FAILED, Refund.Status.REVERSED):
        return refund
    account = _account_lock(order)
    return _refund_restore(order=order, account=account, refund=refund, status=Refund.Status.FAILED, reason=reason,
                           undo_watermark=refused)


def order_refund(
    *, order_id: int, source: str, key: str, cash: int | None = None, actor=None, reason: str = ""
) -> Refund:
    """One path for admin refunds, provider refunds and disputes (DESIGN.md section 7).

    Used credits are not refundable. The order's remaining bonus is clawed back first, then base credits
    up to what is still available. Admin: refunds `cash` (or as much as possible), recording the intent
    before asking the provider for exactly the base credits removed. Provider/dispute: the provider already
    returned `cash`; whatever of it cannot be clawed back is a shortfall and puts the account under review.
    """
    if source == Refund.Source.ADMIN:
        refund, created = refund_admin_start(order_id=order_id, key=key, cash=cash, actor=actor, reason=reason)
        if not created:
            return refund
        return refund_submit(refund_id=refund.pk)
    return _order_refund_provider(order_id=order_id, source=source, key=key, cash=cash, reason=reason)


@atomic_with_retry
def _order_refund_provider(*, order_id: int, source: str, key: str, cash: int | None, reason: str,
                           provider_refund_id: str = "") -> Refund:
    order = _order_lock(order_id)
    existing = Refund.objects.filter(key=key).first()
    if existing is not None:
        return existing
    if order.status not in REFUNDABLE:
        raise Conflict(f"Order {order.order_no} is {order.get_status_display().lower()}; only completed orders are refunded.",
                       code="order_not_refundable")
    if not cash or cash <= 0:
        raise InvalidAmount("A provider refund needs a positive amount.")
    account = _account_lock(order)
    return _refund_record(order=order, account=account, source=source, key=key, cash=cash, status=Refund.Status.SUCCEEDED,
                          provider_refund_id=provider_refund_id, reason=reason)


@atomic_with_retry
def order_refund_total(*, order_id: int, total: int, key: str, reason: str) -> Refund | None:
    """A cumulative refunded figure from the provider (Stripe `amount_refunded`): under the order's lock,
    only what lies above the order's watermark is new. Our own refunds raise the watermark when their
    intent is recorded, so their echo counts nothing, whichever commits first; two cumulative events give
    the same result in either order."""
    order = _order_lock(order_id)
    new = total - order.refund_watermark
    if new <= 0:
        return None
    refund = _order_refund_provider(order_id=order_id, source=Refund.Source.PROVIDER, key=f"{key}:{total}", cash=new,
                                    reason=reason)
    order = TopUpOrder.objects.get(pk=order_id)
    TopUpOrder.objects.filter(pk=order_id).update(refund_watermark=max(order.refund_watermark, total))
    return refund


@atomic_with_retry
def order_refund_update(*, order_id: int, provider: str, refund_id: str, refund_key: str | None, status: str,
                        cash: int | None, counts: bool) -> Refund | None:
    """One refund object reported by the provider. Ours (recognised by the key we sent, or its id): confirm
    or fail it. Not ours: counted once by its id when `counts` (Airwallex), failed ones give back what
    they took. A refund that failed before it was ever counted leaves a marker so it never counts later."""
    order = _order_lock(order_id)
    ours = None
    if refund_key:
        ours = Refund.objects.filter(order=order, provider_key=refund_key).first()
    if ours is None and refund_id:
        ours = Refund.objects.filter(order=order, provider_refund_id=refund_id).first()
    if ours is None and refund_id:
        ours = Refund.objects.filter(key=f"{provider}:refund:{refund_id}").first()
    if ours is not None:
        if status == REFUND_SUCCEEDED or (status == REFUND_PENDING and ours.status == Refund.Status.PENDING and refund_id):
            if status == REFUND_SUCCEEDED:
                return refund_confirm(refund_id=ours.pk, provider_refund_id=refund_id or "")
            Refund.objects.filter(pk=ours.pk, provider_refund_id="").update(provider_refund_id=refund_id)
        elif status == REFUND_FAILED:
            return refund_fail(refund_id=ours.pk, reason=f"{provider}: the refund failed")
        return ours
    key = f"{provider}:refund:{refund_id}"
    if status == REFUND_SUCCEEDED and counts:
        return _order_refund_provider(order_id=order_id, source=Refund.Source.PROVIDER, key=key, cash=cash,
                                      reason=f"{provider} refund", provider_refund_id=refund_id)
    if status == REFUND_FAILED:
        # Not counted through its own id. If a cumulative figure counted it (Stripe), give back its amount
        # (base credits, never more than the order's refunded base); otherwise only leave the marker.
        account = _account_lock(order)
        marker = Refund.objects.create(
            order=order, source=Refund.Source.PROVIDER, status=Refund.Status.PENDING, key=key, requested=0,
            provider_refund_id=refund_id,
        )
        if counts or not cash:
            Refund.objects.filter(pk=marker.pk).update(status=Refund.Status.FAILED, closed_at=timezone.now(),
                                                      failure_reason=f"{provider}: failed before it was counted")
            marker.refresh_from_db()
            return marker
        # Whether or not the cumulative figure counted it yet, the result is the same once it has: give back
        # what was counted, and raise the watermark by the rest so that its late cumulative event counts nothing.
        restorable = min(cash, order.refunded_amount)
        if cash > restorable:
            order.refund_watermark += cash - restorable
            order.save(update_fields=["refund_watermark"])
        # The bonus went with the first refund; it comes back when no money is out any more.
        bonus = order.bonus_clawed if order.cash_refunded - restorable <= 0 else 0
        return _refund_restore(order=order, account=account, refund=marker, status=Refund.Status.FAILED,
                               reason=f"{provider}: the refund failed", base=restorable, bonus=bonus, cash=restorable)
    return None


@atomic_with_retry
def order_dispute(*, order_id: int, provider: str, dispute_id: str, lost: bool, cash: int | None) -> Refund | None:
    """A dispute moved money: lost (money left: claw back, once) or won (money came back: restore, once).
    A win that arrives before the loss leaves the dispute closed, so the late loss changes nothing."""
    key = f"{provider}:dispute:{dispute_id}"
    order = _order_lock(order_id)
    existing = Refund.objects.filter(key=key).first()
    if lost:
        if existing is not None:
            return existing
        return _order_refund_provider(order_id=order_id, source=Refund.Source.DISPUTE, key=key, cash=cash,
                                      reason=f"{provider} dispute lost")
    if existing is None:
        return Refund.objects.create(order=order, source=Refund.Source.DISPUTE, status=Refund.Status.REVERSED, key=key,
                                     requested=0, closed_at=timezone.now(), failure_reason="won before funds were withdrawn")
    if existing.status in (Refund.Status.FAILED, Refund.Status.REVERSED):
        return existing
    account = _account_lock(order)
    return _refund_restore(order=order, account=account, refund=existing, status=Refund.Status.REVERSED,
                           reason=f"{provider} dispute won")


def refunds_resume(*, older_than: timedelta | None = None, limit: int = 100) -> dict[str, int]:
    """Admin refunds left pending (the process died after recording the intent, or the provider's answer was
    lost): ask the provider again with the same idempotency key."""
    older_than = older_than if older_than is not None else timedelta(seconds=settings.REFUND_RESUME_AFTER_SECONDS)
    pending = Refund.objects.filter(status=Refund.Status.PENDING, source=Refund.Source.ADMIN,
                                    created_at__lte=timezone.now() - older_than).order_by("created_at")[:limit]
    counts = {"succeeded": 0, "failed": 0, "pending": 0}
    for refund in pending:
        try:
            refund = refund_submit(refund_id=refund.pk)
        except providers.ProviderError:
            refund.refresh_from_db()
        counts[refund.status if refund.status in counts else "failed"] += 1
    return counts


# --- webhooks -------------------------------------------------------------------------------------


def webhook_receive(*, provider: str, body: bytes, headers) -> tuple[WebhookEvent, bool]:
    """Verify the signature on the raw body, store the event once, queue processing. (event, created)"""
    client = providers.client_for(provider)
    payload = client.webhook_verify(body, headers)
    try:
        event_id, event_type = client.event_identity(payload)
    except (KeyError, TypeError):
        raise InvalidRequest("The event has no id or type.", code="invalid_event") from None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(provider=provider, event_id=event_id, event_type=event_type, payload=_jsonable(payload))
            transaction.on_commit(lambda: _enqueue(event.pk))
        return event, True
    except IntegrityError:
        event = WebhookEvent.objects.get(provider=provider, event_id=event_id)
        if event.status == WebhookEvent.Status.FAILED:
            _enqueue(event.pk)  # a redelivery retries a failed event
        return event, False


def _jsonable(payload):
    """Airwallex payloads are parsed with Decimal amounts; store those as exact strings."""
    if isinstance(payload, dict):
        return {k: _jsonable(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_jsonable(v) for v in payload]
    if isinstance(payload, Decimal):
        return str(payload)
    return payload


def _enqueue(event_pk: int) -> None:
    from wallet.tasks import webhook_process_task

    try:
        webhook_process_task.delay(event_pk)
    except Exception:
        logger.exception("could not queue webhook event %s; the retry task will pick it up", event_pk)


def _find_order(provider: str, event: ProviderEvent) -> TopUpOrder | None:
    qs = TopUpOrder.objects.filter(provider=provider)
    if event.order_no:
        order = qs.filter(order_no=event.order_no).first()
        if order:
            return order
    if event.checkout_id:
        order = qs.filter(checkout_id=event.checkout_id).first()
        if order:
            return order
    if event.payment_id:
        return qs.filter(payment_id=event.payment_id).first()
    return None


def _handle_paid(provider, event, order):
    order_complete(order_id=order.pk, amount_cents=event.amount_cents, currency=event.currency, payment_id=event.payment_id or "")


def _handle_pending(provider, event, order):
    if event.payment_id and not order.payment_id:
        TopUpOrder.objects.filter(pk=order.pk, payment_id="").update(payment_id=event.payment_id)


def _handle_failed(provider, event, order):
    order_close(order_id=order.pk, status=TopUpOrder.Status.FAILED, reason=f"{provider}: payment failed")


def _handle_cancelled(provider, event, order):
    order_close(order_id=order.pk, status=TopUpOrder.Status.CANCELLED, reason=f"{provider}: checkout expired or cancelled")


def _check_refund_currency(provider, event, order):
    if event.currency and event.currency.lower() != order.currency:
        raise PaymentMismatch(f"Order {order.order_no}: {provider} reports a refund or dispute in {event.currency}, "
                              f"the order is in {order.currency}; nothing changed.")


def _handle_refund_total(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_refund_total(order_id=order.pk, total=from_cents(event.refund_total_cents or 0), key=f"{provider}:{event.refund_id}",
                       reason=f"{provider} refund")


def _handle_refund_update(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_refund_update(order_id=order.pk, provider=provider, refund_id=event.refund_id or "", refund_key=event.refund_key,
                        status=event.refund_status or REFUND_PENDING,
                        cash=from_cents(event.refund_cents) if event.refund_cents is not None else None,
                        counts=event.refund_counts)


def _handle_dispute(provider, event, order):
    _check_refund_currency(provider, event, order)
    order_dispute(order_id=order.pk, provider=provider, dispute_id=event.dispute_id or "", lost=event.action == DISPUTE_LOST,
                  cash=from_cents(event.refund_cents) if event.refund_cents is not None else order.amount)


ACTION_HANDLERS = {
    PAID: _handle_paid,
    PENDING: _handle_pending,
    FAILED: _handle_failed,
    CANCELLED: _handle_cancelled,
    REFUNDED: _handle_refund_total,
    REFUND_UPDATED: _handle_refund_update,
    DISPUTE_LOST: _handle_dispute,
    DISPUTE_WON: _handle_dispute,
}


def webhook_process(*, event_pk: int) -> WebhookEvent:
    """Apply one stored event (exactly once: the row lock and status make a rerun harmless)."""
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().get(pk=event_pk)
            if event.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
                return event
            parsed = providers.client_for(event.provider).event_parse(event.payload)
            if parsed is None:
                event.status = WebhookEvent.Status.IGNORED
            else:
                order = _find_order(event.provider, parsed)
                if order is None:
                    raise NotFound(f"No order matches this {event.provider} event.", code="unknown_order")
                ACTION_HANDLERS[parsed.action](event.provider, parsed, order)
                event.status = WebhookEvent.Status.PROCESSED
            event.attempts += 1
            event.error = ""
            event.processed_at = timezone.now()
            event.save(update_fields=["status", "attempts", "error", "processed_at"])
            return event
    except Exception as exc:
        WebhookEvent.objects.filter(pk=event_pk).exclude(status=WebhookEvent.Status.PROCESSED).update(
            status=WebhookEvent.Status.FAILED, attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:4000]
        )
        logger.warning("webhook event %s failed: %s", event_pk, exc)
        raise


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
    """An order whose checkout was never created (the process died in between) can never be paid."""
    return TopUpOrder.objects.filter(status=TopUpOrder.Status.PENDING, checkout_id="", created_at__lte=cutoff).update(
        status=TopUpOrder.Status.CANCELLED, failure_reason="No checkout was created for this order.", closed_at=now
    )

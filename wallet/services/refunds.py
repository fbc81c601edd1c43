"""Refunds and disputes of top-up orders (DESIGN.md section 7)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from synstar.accounts.services import user_status_set
from synstar.db import atomic_with_retry
from synstar.errors import Conflict
from synstar.i18n import lazy_format
from synstar.money import (
    InvalidAmount,
    format_usd,
    from_cents,
    to_cents,
)
from wallet import providers
from wallet.models import (
    Account,
    Refund,
    SystemAccount,
    TopUpOrder,
    Transaction,
)
from wallet.providers.base import (
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
)
from wallet.services.invoices import credit_note_for_refund
from wallet.services.ledger import Line, main_account, posting_create, system_account_id
from wallet.services.topups import REFUNDABLE, TOPUP_HOOKS

logger = logging.getLogger(__name__)


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

# Stripe keeps an idempotency key for 24 hours; after that, asking again could make a second refund.
REFUND_RESUME_MAX_AGE = timedelta(hours=23)


class NothingRefundable(Conflict):
    code = "nothing_refundable"
    default_message = _("Nothing left to refund: the order's credits were used or already refunded.")


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
    order.cash_refunded += cash
    order.refund_watermark += watermark
    assert order.cash_refunded >= 0 and order.refund_watermark >= 0, f"refund counters of {order.order_no} went negative"
    order.status = _refund_status(amount=order.amount, cash_refunded=order.cash_refunded)
    order.save(update_fields=["refunded_amount", "bonus_clawed", "cash_refunded", "refund_watermark", "status"])


@dataclass(frozen=True)
class RefundQuote:
    """What an admin refund of an order would do now: `bonus` clawed back, then `cash` of base credits
    removed and returned to the payer (whole cents)."""

    bonus: int
    cash: int


def refund_quote(*, order: TopUpOrder, available: int, cash: int | None = None) -> RefundQuote:
    """The rule of an admin refund, given the account's available balance: used credits are not refundable;
    the order's remaining bonus is clawed back first, then base credits up to what is still available
    (rounded down to a cent). The refund itself (`_claw_back`) and the refund-request page both use it; the
    refund decides again under the order's and the account's locks."""
    if order.status not in REFUNDABLE:
        return RefundQuote(bonus=0, cash=0)
    available = max(available, 0)
    bonus_take = min(order.bonus - order.bonus_clawed, available)
    base_left = order.amount - order.refunded_amount
    wanted = base_left if cash is None else min(cash, base_left)
    base_take = min(wanted, available - bonus_take)
    base_take -= base_take % from_cents(1)
    if base_take <= 0:
        return RefundQuote(bonus=0, cash=0)
    return RefundQuote(bonus=bonus_take, cash=base_take)


def _claw_back(*, order: TopUpOrder, account: Account, cash: int | None, admin: bool) -> tuple[int, int, int, int]:
    """(bonus_take, base_take, cash_out, shortfall) for refunding `cash` of the locked order.

    The order's remaining bonus goes first, then base credits up to what is still available. Admin: the
    cash refunded is the base credits removed (whole cents). Provider/dispute: the cash already went back;
    what cannot be clawed back is a shortfall."""
    available = max(account.balance - account.held, 0)
    bonus_take = min(order.bonus - order.bonus_clawed, available)
    base_left = order.amount - order.refunded_amount
    if admin:
        quote = refund_quote(order=order, available=available, cash=cash)
        if quote.cash <= 0:
            raise NothingRefundable()
        return quote.bonus, quote.cash, quote.cash, 0
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
        txn = posting_create(kind=Transaction.Kind.REFUND, idempotency_key=f"refund:{key}", lines=lines,
                    description=f"{label} of {order.order_no}", reason=reason, actor=actor)
    _order_counters_add(order, base=base_take, bonus=bonus_take, cash=cash_out, watermark=cash_out if admin else watermark)
    refund = Refund.objects.create(
        order=order, source=source, status=status, key=key, provider_key=provider_key,
        requested=cash_out, base_removed=base_take, bonus_removed=bonus_take,
        shortfall=shortfall, provider_refund_id=provider_refund_id, transaction=txn, actor=actor, reason=reason,
        closed_at=None if status == Refund.Status.PENDING else timezone.now(),
    )
    _refund_followups(order=order, refund=refund)
    return refund


# Called after a refund's failure commits (its credits are back), once per failure, with refund_id and reason:
# refund requests register theirs (wallet.apps), so an approved request whose refund fails later says so.
REFUND_FAILED_HOOKS: list[Callable[..., None]] = []


def _refund_followups(*, order: TopUpOrder, refund: Refund) -> None:
    for hook in TOPUP_HOOKS.refunded:  # invite rewards reverse in proportion (referrals registers it)
        hook(order=order)
    if refund.status == Refund.Status.SUCCEEDED:
        credit_note_for_refund(order=order)  # an invoiced top-up refunded: its credit note, in this transaction
    # A pending refund (ours, sent to the provider) gets its credit note when the provider confirms it
    # (refund_confirm): a refund the provider refuses never had money go out, so it never has a note.
    if refund.shortfall:
        user_status_set(
            user=order.user, status="under_review", review_reason="payment", actor=None,
            note=f"{refund.get_source_display()} on order {order.order_no} returned ${format_usd(refund.shortfall, places=None)} "
                 "more than could be clawed back.",
        )


def _refund_restore(*, order: TopUpOrder, account: Account, refund: Refund, status: str, reason: str,
                    base: int | None = None, cash: int | None = None, undo_watermark: bool = False) -> Refund:
    """Under the order and account locks: give back what `refund` removed (or `base` for a provider refund
    counted only through a cumulative figure), once; the refund becomes `status`. The order's clawed-back
    bonus comes back only when no money is out on the order any more (it went with the first refund)."""
    base = refund.base_removed if base is None else base
    cash = refund.requested if cash is None else cash
    bonus = order.bonus_clawed if order.cash_refunded - cash <= 0 else 0
    txn = None
    if base or bonus:
        lines = [Line(account.pk, base + bonus)]
        if bonus:
            lines.append(Line(system_account_id(SystemAccount.BONUS), -bonus))
        if base:
            lines.append(Line(system_account_id(SystemAccount.REFUNDS), -base))
        what = "Dispute won" if status == Refund.Status.REVERSED else "Refund failed"
        txn = posting_create(kind=Transaction.Kind.REFUND_REVERSAL, idempotency_key=f"refund-restore:{refund.key}", lines=lines,
                             description=f"{what}: credits of {order.order_no} restored", reason=reason)
    _order_counters_add(order, base=-base, bonus=-bonus, cash=-cash, watermark=-cash if undo_watermark else 0)
    Refund.objects.filter(pk=refund.pk).update(
        status=status, base_restored=base, bonus_restored=bonus, restore_transaction=txn,
        failure_reason=reason[:255], closed_at=timezone.now(),
    )
    refund.refresh_from_db()
    return refund


def _recount_above_watermark(*, order: TopUpOrder, account: Account, key: str) -> Refund | None:
    """What the provider's cumulative figure says beyond the watermark, counted now (after a refused refund
    of ours lowered the watermark, a figure that was absorbed by it becomes new again)."""
    new = order.refund_seen - order.refund_watermark
    if new <= 0:
        return None
    account.refresh_from_db(fields=["balance", "held"])  # the restore before this changed them
    refund = _refund_record(order=order, account=account, source=Refund.Source.PROVIDER, key=key, cash=new,
                            status=Refund.Status.SUCCEEDED, reason=f"{order.provider} refund", watermark=new)
    return refund


def refund_admin_start(*, order_id: int, key: str, cash: int | None = None, actor=None, reason: str = "") -> tuple[Refund, bool]:
    """Record an admin refund's intent: credits removed, status pending, a fresh provider idempotency key.
    (refund, created); the same `key` again returns the first refund and changes nothing."""
    if cash is not None and cash <= 0:
        raise InvalidAmount(_("The refund amount must be positive."))
    return _refund_admin_start(order_id=order_id, key=key, cash=cash, actor=actor, reason=reason)


@atomic_with_retry
def _refund_admin_start(*, order_id: int, key: str, cash: int | None, actor, reason: str) -> tuple[Refund, bool]:
    order = _order_lock(order_id)
    existing = Refund.objects.filter(key=key).first()  # read under the lock: a twin request waits, then sees it
    if existing is not None:
        return existing, False
    if order.status not in REFUNDABLE:
        raise Conflict(lazy_format(_("Order %(order_no)s is %(status)s; only completed orders are refunded."), order_no=order.order_no, status=order.get_status_display().lower()),
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
    order = _order_lock(refund.order_id)
    confirmed = Refund.objects.filter(pk=refund_id, status=Refund.Status.PENDING).update(
        status=Refund.Status.SUCCEEDED, closed_at=timezone.now()
    )
    if confirmed:
        credit_note_for_refund(order=order)  # the money went out now: an invoiced top-up gets its credit note
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
    refund = _refund_restore(order=order, account=account, refund=refund, status=Refund.Status.FAILED, reason=reason,
                             undo_watermark=refused)
    if refused:
        _recount_above_watermark(order=order, account=account, key=f"{order.provider}:recount:{refund.key}")
    for hook in REFUND_FAILED_HOOKS:  # after commit: refund requests say so (their lock comes before the order's)
        transaction.on_commit(partial(hook, refund_id=refund.pk, reason=reason))
    return refund


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
                           provider_refund_id: str = "", watermark: int = 0) -> Refund:
    order = _order_lock(order_id)
    existing = Refund.objects.filter(key=key).first()
    if existing is not None:
        return existing
    if order.status not in REFUNDABLE:
        raise Conflict(lazy_format(_("Order %(order_no)s is %(status)s; only completed orders are refunded."), order_no=order.order_no, status=order.get_status_display().lower()),
                       code="order_not_refundable")
    if not cash or cash <= 0:
        raise InvalidAmount(_("A provider refund needs a positive amount."))
    account = _account_lock(order)
    return _refund_record(order=order, account=account, source=source, key=key, cash=cash, status=Refund.Status.SUCCEEDED,
                          provider_refund_id=provider_refund_id, reason=reason, watermark=watermark)


@atomic_with_retry
def order_refund_total(*, order_id: int, total: int, key: str, reason: str) -> Refund | None:
    """A cumulative refunded figure from the provider (Stripe `amount_refunded`): under the order's lock,
    only what lies above the order's watermark is new. Our own refunds raise the watermark when their
    intent is recorded, so their echo counts nothing, whichever commits first; two cumulative events give
    the same result in either order. The largest figure seen is kept, so that a refused refund of ours,
    which lowers the watermark again, lets what it absorbed count."""
    order = _order_lock(order_id)
    if total > order.refund_seen:
        order.refund_seen = total
        order.save(update_fields=["refund_seen"])
    new = total - order.refund_watermark
    if new <= 0:
        return None
    refund = _order_refund_provider(order_id=order_id, source=Refund.Source.PROVIDER, key=f"{key}:{total}", cash=new,
                                    reason=reason, watermark=new)
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
        # Counted (if at all) by a cumulative figure, with other dashboard refunds. Give back no more than those
        # counted and not yet given back: the cash (shortfall included) and the base credits they removed; the
        # rest was not counted yet, so the watermark rises by it and its late cumulative figure counts nothing.
        pool = Refund.objects.filter(order=order, source=Refund.Source.PROVIDER).exclude(pk=marker.pk)
        counted = pool.filter(status=Refund.Status.SUCCEEDED).aggregate(cash=Sum("requested"), base=Sum("base_removed"))
        given = pool.filter(status=Refund.Status.FAILED, base_removed=0).aggregate(cash=Sum("requested"), base=Sum("base_restored"))
        cash_left = (counted["cash"] or 0) - (given["cash"] or 0)
        base_left = (counted["base"] or 0) - (given["base"] or 0)
        restorable = max(min(cash, cash_left), 0)
        if cash > restorable:
            order.refund_watermark += cash - restorable
            order.refund_seen = max(order.refund_seen, order.refund_watermark)
            order.save(update_fields=["refund_watermark", "refund_seen"])
        Refund.objects.filter(pk=marker.pk).update(requested=restorable)
        marker.refresh_from_db()
        return _refund_restore(order=order, account=account, refund=marker, status=Refund.Status.FAILED,
                               reason=f"{provider}: the refund failed", base=max(min(restorable, base_left), 0), cash=restorable)
    return None


@atomic_with_retry
def order_dispute(*, order_id: int, provider: str, dispute_id: str, lost: bool, cash: int | None, stage: str = "") -> Refund | None:
    """A dispute moved money: lost (money left: claw back, once per stage) or won (money came back: restore
    what is clawed back, once). A win that arrives before any loss leaves a closed marker, so the late loss
    of that stage changes nothing; a dispute won at one stage and lost at a later one (Airwallex
    pre-arbitration) is clawed back again under the later stage."""
    base_key = f"{provider}:dispute:{dispute_id}"
    key = f"{base_key}:{stage}" if stage else base_key
    order = _order_lock(order_id)
    rows = Refund.objects.filter(order=order, source=Refund.Source.DISPUTE, key__startswith=base_key).order_by("id")
    existing = rows.filter(key=key).first()
    if lost:
        if existing is not None or rows.filter(status=Refund.Status.SUCCEEDED).exists():
            return existing  # this stage was counted, or money is still out for this dispute
        return _order_refund_provider(order_id=order_id, source=Refund.Source.DISPUTE, key=key, cash=cash,
                                      reason=f"{provider} dispute lost")
    clawed = rows.filter(status=Refund.Status.SUCCEEDED).last()
    if clawed is None:
        if existing is None:
            return Refund.objects.create(order=order, source=Refund.Source.DISPUTE, status=Refund.Status.REVERSED, key=key,
                                         requested=0, closed_at=timezone.now(), failure_reason="won before funds were withdrawn")
        return existing
    account = _account_lock(order)
    return _refund_restore(order=order, account=account, refund=clawed, status=Refund.Status.REVERSED,
                           reason=f"{provider} dispute won")


def refunds_resume(*, older_than: timedelta | None = None, limit: int = 100) -> dict[str, int]:
    """Admin refunds left pending (the process died after recording the intent, or the provider's answer was
    lost): ask the provider again with the same idempotency key. Stripe keeps idempotency keys for 24 hours,
    so a refund pending longer than `REFUND_RESUME_MAX_AGE` is not asked again (that could refund twice): it
    is logged for an operator, who checks the provider's dashboard."""
    older_than = older_than if older_than is not None else timedelta(seconds=settings.REFUND_RESUME_AFTER_SECONDS)
    now = timezone.now()
    pending = Refund.objects.filter(status=Refund.Status.PENDING, source=Refund.Source.ADMIN, created_at__lte=now - older_than)
    counts = {"succeeded": 0, "failed": 0, "pending": 0, "stale": 0}
    for refund in pending.filter(created_at__lt=now - REFUND_RESUME_MAX_AGE)[:limit]:
        counts["stale"] += 1
        logger.error("admin refund %s of order %s is still pending after %s: check it at the provider",
                     refund.key, refund.order_id, REFUND_RESUME_MAX_AGE)
    for refund in pending.filter(created_at__gte=now - REFUND_RESUME_MAX_AGE).order_by("created_at")[:limit]:
        try:
            refund = refund_submit(refund_id=refund.pk)
        except Exception:  # one refund's trouble never stops the others
            logger.exception("resuming refund %s failed; it stays pending", refund.key)
            refund.refresh_from_db()
        counts[refund.status if refund.status in counts else "failed"] += 1
    return counts

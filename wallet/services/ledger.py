"""Writes to the ledger. Every change of credit goes through `posting_create`, except the settlement of
metered requests, which `holds_settle` writes (set-based, for the worker's batches); holds close through
`holds_settle` and `hold_release`. Leases (a hot account's balance reserved in slices, see `Lease`) are
taken, resized, returned and expired here too: they change the account's `held`.

Conventions: amounts are integer nanos; a positive entry credits the account. User accounts are changed
by one conditional UPDATE each, in primary-key order; a posting that would take spendable credit below
zero changes nothing and raises InsufficientBalance. An idempotency key already used returns the first
transaction and changes nothing (or raises IdempotencyConflict if it was used for something else).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from synstar.db import atomic_with_retry
from synstar.errors import AccountInDebt, Conflict, InsufficientBalance, InvalidRequest, NotFound, ServiceBusy
from synstar.i18n import lazy_format
from synstar.money import format_usd, parse_usd
from wallet.models import Account, Entry, Hold, Lease, SystemAccount, Transaction

logger = logging.getLogger(__name__)


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    default_message = _("This idempotency key was already used for a different operation.")


class HoldClosed(Conflict):
    code = "hold_closed"
    default_message = _("This hold is already closed.")


# --- accounts -------------------------------------------------------------------------------------

_system_account_ids: dict[str, int] = {}


def system_account_id(code: SystemAccount | str) -> int:
    """Primary key of a system account, created on first use and remembered per process."""
    code = str(code)
    if code in _system_account_ids:
        return _system_account_ids[code]
    SystemAccount(code)  # raises ValueError for an unknown code
    account, _ = _get_or_create_account(code=f"system:{code}", kind=Account.Kind.SYSTEM, user=None)
    # Remember it only once it is committed: a row created in a transaction that rolls back is gone.
    transaction.on_commit(lambda: _system_account_ids.__setitem__(code, account.pk))
    return account.pk


def _get_or_create_account(*, code: str, kind: str, user) -> tuple[Account, bool]:
    try:
        return Account.objects.get(code=code), False
    except Account.DoesNotExist:
        try:
            with transaction.atomic():
                return Account.objects.create(code=code, kind=kind, user=user), True
        except IntegrityError:
            return Account.objects.get(code=code), False


def user_accounts_open(*, user) -> tuple[Account, Account]:
    """The user's main and referral accounts, created if missing (safe to call concurrently)."""
    main, _ = _get_or_create_account(code=f"user:{user.pk}:main", kind=Account.Kind.MAIN, user=user)
    referral, _ = _get_or_create_account(code=f"user:{user.pk}:referral", kind=Account.Kind.REFERRAL, user=user)
    return main, referral


def main_account(*, user) -> Account:
    return user_accounts_open(user=user)[0]


def referral_account(*, user) -> Account:
    return user_accounts_open(user=user)[1]


# --- postings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    account_id: int
    amount: int


def posting_create(
    *,
    kind: str,
    idempotency_key: str,
    lines: Iterable[Line],
    description: str = "",
    reason: str = "",
    user_reason: str = "",
    actor=None,
    allow_debt: bool = False,
    account_updates: dict[int, dict] | None = None,
) -> Transaction:
    """Write one balanced posting and update cached balances, or return the earlier one for this key.

    Must run inside a transaction. `allow_debt` lets user accounts go below zero (settlement only).
    `account_updates` adds column updates to the same UPDATE of an account row (one write per row).
    """
    assert transaction.get_connection().in_atomic_block, "posting_create must run inside a transaction"
    if not idempotency_key or len(idempotency_key) > 200:
        raise InvalidRequest(_("An idempotency key of 1-200 characters is required."), code="invalid_idempotency_key")
    merged: dict[int, int] = defaultdict(int)
    for line in lines:
        merged[line.account_id] += line.amount
    merged = {account_id: amount for account_id, amount in merged.items() if amount != 0}
    if len(merged) < 2 or sum(merged.values()) != 0:
        raise ValueError(f"A posting needs two or more non-zero lines summing to zero, got {merged}")

    try:
        with transaction.atomic():
            txn = Transaction.objects.create(
                kind=kind, idempotency_key=idempotency_key, description=description[:255], reason=reason, user_reason=user_reason,
                actor=actor,
            )
    except IntegrityError:
        existing = Transaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:  # the IntegrityError was not the key: re-raise it
            raise
        earlier = {e.account_id: e.amount for e in existing.entries.all()}
        if existing.kind != kind or earlier != merged:
            raise IdempotencyConflict() from None
        existing.replayed = True
        return existing

    accounts = {a.pk: a for a in Account.objects.filter(pk__in=merged).only("pk", "kind")}
    # Fixed lock order: user accounts by primary key. System accounts have no cached row to update.
    for account_id in sorted(merged):
        account = accounts[account_id]
        if account.kind == Account.Kind.SYSTEM:
            continue
        amount = merged[account_id]
        rows = Account.objects.filter(pk=account_id)
        if amount < 0 and not allow_debt:
            rows = rows.filter(balance__gte=F("held") - amount)
        if rows.update(balance=F("balance") + amount, **(account_updates or {}).get(account_id, {})) != 1:
            raise hold_refusal_error(account_id=account_id, amount=-amount)
    Entry.objects.bulk_create(
        [Entry(transaction=txn, account_id=account_id, amount=amount, statement_kind=kind) for account_id, amount in merged.items()]
    )
    txn.replayed = False
    return txn


def hold_refusal_error(*, account_id: int, amount: int) -> InsufficientBalance | AccountInDebt:
    account = Account.objects.only("balance", "held").get(pk=account_id)
    available = format_usd(account.available, places=None)
    if account.balance < 0:
        return AccountInDebt(
            lazy_format(_("The account owes $%(amount)s; top up to repay it first."), amount=format_usd(-account.balance, places=None)),
            available=available,
        )
    return InsufficientBalance(
        lazy_format(_("Available balance $%(available)s is less than $%(amount)s."), available=available, amount=format_usd(amount, places=None)),
        available=available,
    )


@atomic_with_retry
def credit_create(
    *, user, amount: int, source: SystemAccount, kind: str, idempotency_key: str, description: str = ""
) -> Transaction:
    """Move `amount` from a system source into the user's main account."""
    _require_positive(amount)
    account = main_account(user=user)
    return posting_create(
        kind=kind,
        idempotency_key=idempotency_key,
        description=description,
        lines=[Line(system_account_id(source), -amount), Line(account.pk, amount)],
    )


@atomic_with_retry
def debit_create(
    *, user, amount: int, sink: SystemAccount, kind: str, idempotency_key: str, description: str = ""
) -> Transaction:
    """Move `amount` from the user's available credit to a system account; refused if not available."""
    _require_positive(amount)
    account = main_account(user=user)
    return posting_create(
        kind=kind,
        idempotency_key=idempotency_key,
        description=description,
        lines=[Line(account.pk, -amount), Line(system_account_id(sink), amount)],
    )


def grant_issue(
    *, user, amount: int, idempotency_key: str, source: SystemAccount = SystemAccount.PROMOTIONS, description: str = ""
) -> Transaction:
    return credit_create(
        user=user,
        amount=amount,
        source=source,
        kind=Transaction.Kind.GRANT,
        idempotency_key=idempotency_key,
        description=description or gettext_noop("Promotional credit"),  # stored in English, translated when read
    )


def signup_grant_issue(*, user) -> Transaction | None:
    """The one-time signup grant (SIGNUP_GRANT_USD; zero disables it). Safe to call more than once."""
    amount = parse_usd(settings.SIGNUP_GRANT_USD, allow_zero=True, field="SIGNUP_GRANT_USD")
    if amount == 0:
        user_accounts_open(user=user)
        return None
    return credit_create(
        user=user,
        amount=amount,
        source=SystemAccount.SIGNUP_GRANTS,
        kind=Transaction.Kind.SIGNUP_GRANT,
        idempotency_key=f"signup-grant:{user.pk}",
        description=gettext_noop("Welcome credit"),  # stored in English, translated when read
    )


ADJUSTMENT_DESCRIPTION = "Balance adjustment"


@atomic_with_retry
def adjustment_create(
    *, user, amount: int, reason: str, actor, idempotency_key: str, user_reason: str = ""
) -> Transaction:
    """A manual balance adjustment by an admin (positive credits, negative debits), with who and why.

    `reason` is the internal note (operators only); `user_reason` is what the user reads in their history.
    Neither the description nor anything else the user sees names the operator.
    A negative adjustment may not take the available balance below zero.
    """
    if amount == 0:
        raise InvalidRequest(_("The adjustment amount must not be zero."), code="invalid_amount")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(_("A manual adjustment needs a reason."), code="reason_required")
    if actor is None or not getattr(actor, "is_staff", False):
        raise InvalidRequest(_("A manual adjustment needs the staff member who made it."), code="actor_required")
    account = main_account(user=user)
    return posting_create(
        kind=Transaction.Kind.ADJUSTMENT,
        idempotency_key=idempotency_key,
        description=ADJUSTMENT_DESCRIPTION,
        reason=reason,
        user_reason=(user_reason or "").strip()[:255],
        actor=actor,
        lines=[Line(system_account_id(SystemAccount.ADJUSTMENTS), -amount), Line(account.pk, amount)],
    )


def _require_positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidRequest(_("The amount must be a positive number of nanos."), code="invalid_amount")


# --- holds ----------------------------------------------------------------------------------------

@atomic_with_retry
def hold_release(*, hold_id: int, expired: bool = False) -> Hold:
    """Lift a hold with no charge (upstream failure, or the sweeper when `expired`). Exactly once."""
    target = Hold.Status.EXPIRED if expired else Hold.Status.RELEASED
    hold = Hold.objects.select_for_update().filter(pk=hold_id).first()
    if hold is None:
        raise NotFound(_("No such hold."), code="hold_not_found")
    if hold.status != Hold.Status.OPEN:
        if hold.status == target or (hold.status == Hold.Status.EXPIRED and not expired):
            return hold
        raise HoldClosed(lazy_format(_("This hold is already %(status)s."), status=hold.status))
    # A hold in a lease stays counted in the lease's used until the lease folds it (spending nothing of it):
    # the lease row is not locked here. Any other hold is in the account's held.
    if not hold.in_lease:
        Account.objects.filter(pk=hold.account_id).update(held=F("held") - hold.amount)
    hold.status = target
    hold.closed_at = timezone.now()
    hold.save(update_fields=["status", "closed_at"])
    return hold


# --- leases ---------------------------------------------------------------------------------------
#
# A lease reserves a slice of a main account's available balance as one durable hold (the account's
# `held` rises by its `size`); holds placed on it raise the lease's `used` (billing's hot path does that
# with one conditional UPDATE of the lease row) and never touch the account row. Settlement and the
# sweeper's expiry close such a hold without locking its lease: settlement lowers the account's held by
# what the hold spent (its `lease_spent`: the charge, up to the hold) with the balance; whoever next locks
# the lease (its holder renewing, a consolidation, its close) folds the closed holds in, lowering the
# lease's used by their amounts and its size by what they spent. Lock order: generation, lease (leases of one account in id order), hold, account, token:
# nothing that holds a hold's lock ever waits for a lease.


@dataclass(frozen=True)
class LeaseState:
    lease_id: int
    account_id: int
    size: int
    used: int
    expires_at: datetime


_GRANT_SQL = """
WITH a AS (SELECT id, LEAST(%(want)s, GREATEST(balance - held, 0) / %(share)s) AS g FROM wallet_account
            WHERE id = %(account_id)s AND kind = 'main')
UPDATE wallet_account w SET held = w.held + a.g FROM a
 WHERE w.id = a.id AND a.g > 0 AND a.g >= %(minimum)s AND w.balance - w.held >= a.g
RETURNING a.g
"""


def _grant(*, account_id: int, want: int, minimum: int, share: int) -> int:
    """Raise the account's held by up to `want` (about available // `share`, never more than available),
    with one conditional UPDATE: the amount granted, or 0 (nothing changed, no lock kept) when that is
    less than `minimum`."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_GRANT_SQL, {"want": want, "share": max(share, 1), "account_id": account_id, "minimum": minimum})
            row = cursor.fetchone()
        return row[0] if row else 0
    row = Account.objects.filter(pk=account_id, kind=Account.Kind.MAIN).values_list("balance", "held").first()
    granted = min(want, max(row[0] - row[1], 0) // max(share, 1)) if row else 0
    if granted <= 0 or granted < minimum:
        return 0
    changed = Account.objects.filter(pk=account_id, balance__gte=F("held") + granted).update(held=F("held") + granted)
    return granted if changed else 0


def lease_take(*, account_id: int, want: int, minimum: int = 1, share: int = 1, seconds: float, holder: str = "",
               now: datetime | None = None) -> LeaseState | None:
    """Reserve up to `want` (at most available // `share`, at least `minimum`) of the account as a new
    lease open for `seconds`; None (nothing changed) if the account cannot give `minimum`. Runs in the
    caller's transaction (or its own)."""
    now = now or timezone.now()
    with transaction.atomic():
        granted = _grant(account_id=account_id, want=want, minimum=minimum, share=share)
        if not granted:
            return None
        lease = Lease.objects.create(account_id=account_id, size=granted, used=0, holder=holder[:200],
                                     expires_at=now + timedelta(seconds=seconds))
    return LeaseState(lease.pk, account_id, granted, 0, lease.expires_at)


def lease_resize(*, lease_id: int, headroom: int, share: int = 1, seconds: float, now: datetime | None = None,
                 shrink: bool = True) -> LeaseState | None:
    """Renew an open lease: its closed holds are folded in, then its size becomes `used + headroom`
    (growing takes at most available // `share` from the account, shrinking hands the unused part back;
    with `shrink` False a lease with room to spare is left as it is, so the account row is not locked)
    and it is open for `seconds` more. None if the lease is closed or past its deadline (the holder takes
    a new one)."""
    now = now or timezone.now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update(no_key=True).filter(pk=lease_id, status=Lease.Status.OPEN, expires_at__gt=now).first()
        if lease is None:
            return None
        _lease_fold(lease)
        want = lease.used + max(headroom, 0)
        if want > lease.size:
            lease.size += _grant(account_id=lease.account_id, want=want - lease.size, minimum=1, share=share)
        elif want < lease.size and shrink:
            Account.objects.filter(pk=lease.account_id).update(held=F("held") - (lease.size - want))
            lease.size = want
        lease.expires_at = now + timedelta(seconds=seconds)
        lease.save(update_fields=["size", "used", "expires_at"])
    return LeaseState(lease.pk, lease.account_id, lease.size, lease.used, lease.expires_at)


_FOLD_SQL = """
UPDATE wallet_hold SET in_lease = false WHERE lease_id = %s AND in_lease{closed}
RETURNING status = 'open', amount, lease_spent
"""


def _lease_fold(lease: Lease, *, closing: bool = False) -> None:
    """Take the closed holds out of a lease the caller has locked: its `used` falls by their amounts and
    its `size` by what they spent (settlement already took that from the account's `held`, so the account
    row is not touched). `closing` takes every hold out, the open ones too (they count on the account
    from then on); `used` is left at the open ones' total. One statement; a settlement that has a hold
    locked is waited for and then seen closed (closing) or left for the next fold."""
    closed_only = "" if closing else " AND status <> 'open'"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_FOLD_SQL.format(closed=closed_only), [lease.pk])
            rows = cursor.fetchall()
    else:
        holds = Hold.objects.select_for_update().filter(lease=lease, in_lease=True)
        if not closing:
            holds = holds.exclude(status=Hold.Status.OPEN)
        locked = list(holds)  # exactly the holds counted below are taken out
        rows = [(h.status == Hold.Status.OPEN, h.amount, h.lease_spent) for h in locked]
        Hold.objects.filter(pk__in=[h.pk for h in locked]).update(in_lease=False)
    lease.used -= sum(row[1] for row in rows if not row[0])
    lease.size -= sum(row[2] for row in rows if not row[0])


def _lease_close(lease: Lease, *, status: str, now: datetime) -> None:
    """Fold every hold out of the lease and hand the rest back; the holds still open on it count on the
    account directly from now on (their amounts stay in its held)."""
    _lease_fold(lease, closing=True)  # lease.used: what stays held for the holds still open
    if lease.size - lease.used:
        Account.objects.filter(pk=lease.account_id).update(held=F("held") - (lease.size - lease.used))
    Lease.objects.filter(pk=lease.pk).update(status=status, closed_at=now, size=lease.size, used=lease.used)


@atomic_with_retry
def lease_return(*, lease_id: int) -> bool:
    """The holder hands its lease back (its unused part returns to the account). False if already closed."""
    lease = Lease.objects.select_for_update(no_key=True).filter(pk=lease_id, status=Lease.Status.OPEN).first()
    if lease is None:
        return False
    _lease_close(lease, status=Lease.Status.RETURNED, now=timezone.now())
    return True


@atomic_with_retry
def _lease_expire(*, lease_id: int, now: datetime) -> bool:
    lease = Lease.objects.select_for_update(skip_locked=True, no_key=True).filter(
        pk=lease_id, status=Lease.Status.OPEN, expires_at__lt=now
    ).first()
    if lease is None:
        return False
    _lease_close(lease, status=Lease.Status.EXPIRED, now=now)
    return True


def leases_expire(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Sweeper: release every open lease past its deadline (its holder died or stopped renewing), one
    transaction each. Its holds stay open and settle (or expire) once, on the account directly."""
    now = now or timezone.now()
    overdue = Lease.objects.filter(status=Lease.Status.OPEN, expires_at__lt=now).values_list("pk", flat=True)[:batch]
    released = 0
    for pk in list(overdue):
        try:
            released += _lease_expire(lease_id=pk, now=now)
        except ServiceBusy:  # its close waited too long for a settlement batch: the next sweep takes it
            logger.warning("lease %s: busy, released by the next sweep", pk)
    return released


def leases_slack(*, account_id: int) -> int:
    """The account's available balance plus what consolidating its open leases would free (their unused
    parts, and what their closed holds did not spend), read without locks: a hint before
    leases_consolidate."""
    slack = Lease.objects.filter(account_id=account_id, status=Lease.Status.OPEN).aggregate(s=Sum(F("size") - F("used")))["s"]
    folded = Hold.objects.filter(lease__account_id=account_id, lease__status=Lease.Status.OPEN, in_lease=True).exclude(
        status=Hold.Status.OPEN
    ).aggregate(s=Sum(F("amount") - F("lease_spent")))["s"]
    slack = (slack or 0) + (folded or 0)
    if not slack:
        return 0
    row = Account.objects.filter(pk=account_id).values_list("balance", "held").first()
    return slack + max(row[0] - row[1], 0) if row else 0


@atomic_with_retry
def leases_consolidate(*, account_id: int) -> int:
    """Shrink every open lease of the account to its used part and hand the rest back (before a hold is
    refused, so money reserved in other processes' leases is not lost to it); each is folded first.
    Returns the nanos freed. Lock order: the leases in id order, their holds, then the account; call it
    holding no other lock. A lease locked right now (a hold being placed on it, a renewal) is skipped: it
    is in use, and the next refused request takes its unused part."""
    leases = list(
        Lease.objects.select_for_update(skip_locked=True, no_key=True).filter(account_id=account_id, status=Lease.Status.OPEN).order_by("pk")
    )
    freed = 0
    for lease in leases:
        before = (lease.size, lease.used)
        _lease_fold(lease)
        if (lease.size, lease.used) != before or lease.size > lease.used:
            freed += lease.size - lease.used
            Lease.objects.filter(pk=lease.pk).update(size=lease.used, used=lease.used)
    if freed:
        Account.objects.filter(pk=account_id).update(held=F("held") - freed)
    return freed


# --- settlement of metered requests ---------------------------------------------------------------


@dataclass(frozen=True)
class AccountCharge:
    """What settling one request changes on its account row: `balance` down and `consumed` up by `cost`,
    `held` down by `lift` (the hold's amount while it is still open, 0 once the sweeper expired it),
    `request_count` up by `count` (0 for a failed request)."""

    account_id: int
    cost: int
    lift: int
    count: int


@dataclass(frozen=True)
class HoldClose:
    """How one hold closes. `status` settled: `settled` is its settled amount, and a `cost` above zero is
    charged by the posting `hold-settle:<hold id>` (the account's entry -cost, revenue's +cost). `status`
    released: no charge (`settled` None, `cost` 0); only an open hold is released. `lease_spent`: a hold
    in an open lease, settled, records what it charged up to its amount; its AccountCharge lifts that
    much from the account's held now, and the lease's size falls by it when the lease folds the hold."""

    hold_id: int
    account_id: int
    status: str
    settled: int | None
    cost: int
    lease_spent: int = 0


def holds_settle(*, charges: Sequence[AccountCharge], closes: Sequence[HoldClose], now: datetime,
                 orm: bool = False) -> None:
    """Write the wallet side of settling metered requests: the account rows, the settlement postings and
    the holds' close. The caller runs it in its transaction, has locked the holds (after its own rows:
    generation, then hold), and updates its own rows after it (tokens after accounts: the lock order).

    Each account row is updated once, in ascending id order, whatever the number of charges on it. On
    PostgreSQL one request is one statement, and a batch a fixed number of set-based statements;
    `orm` (or another database) writes the same rows through the ORM. The caller must not close a
    hold twice: the hold's state was checked under its lock. A hold in a lease is closed with its
    `lease_spent` (its AccountCharge lifts just that from held): no lease is locked here, so settlement
    never waits for a lease's holder.
    """
    assert transaction.get_connection().in_atomic_block, "holds_settle must run inside a transaction"
    merged: dict[int, list[int]] = {}
    for c in charges:
        row = merged.setdefault(c.account_id, [0, 0, 0])
        row[0] += c.cost
        row[1] += c.lift
        row[2] += c.count
    accounts = {a: v for a, v in sorted(merged.items()) if any(v)}
    revenue_id = system_account_id(SystemAccount.REVENUE)
    if orm or connection.vendor != "postgresql":
        _holds_settle_orm(accounts, closes, now=now, revenue_id=revenue_id)
    elif len(accounts) <= 1 and len(closes) <= 1:
        _hold_settle_sql(accounts, closes[0] if closes else None, now=now, revenue_id=revenue_id)
    else:
        _holds_settle_sql(accounts, closes, now=now, revenue_id=revenue_id)


_ACCOUNT_SETTLE_SQL = (
    "UPDATE wallet_account SET balance = balance - %(charge)s, held = held - %(lift)s,"
    " consumed = consumed + %(charge)s, request_count = request_count + %(count)s WHERE id = %(account_id)s"
)


def _hold_settle_sql(accounts: dict[int, list[int]], close: HoldClose | None, *, now, revenue_id: int) -> None:
    """One request: one statement (its account row, its posting, its hold). The hold is already locked, so
    the account is the only row this statement locks."""
    params = {"now": now, "revenue_id": revenue_id}
    ctes = []
    if accounts:
        ((account_id, (cost, lift, count)),) = accounts.items()
        ctes.append(f"a AS ({_ACCOUNT_SETTLE_SQL})")
        params.update(charge=cost, lift=lift, count=count, account_id=account_id)
    if close is None:
        if ctes:  # the account alone (a failed request whose hold the sweeper already expired has nothing)
            with connection.cursor() as cursor:
                cursor.execute(_ACCOUNT_SETTLE_SQL, params)
        return
    settlement = "NULL"
    if close.cost:
        ctes.append(
            "x AS (INSERT INTO wallet_transaction (kind, idempotency_key, description, reason, created_at)"
            " VALUES ('settlement', 'hold-settle:' || %(hold_id)s, 'Usage', '', %(now)s) RETURNING id)"
        )
        ctes.append(
            "e AS (INSERT INTO wallet_entry (transaction_id, account_id, amount)"
            " SELECT x.id, v.account_id, v.amount FROM x, (VALUES (%(hold_account_id)s::bigint, -%(cost)s::bigint),"
            " (%(revenue_id)s::bigint, %(cost)s::bigint)) v(account_id, amount))"
        )
        settlement = "(SELECT id FROM x)"
    params.update(hold_id=close.hold_id, hold_account_id=close.account_id, cost=close.cost, status=close.status,
                  settled=close.settled, spent=close.lease_spent)
    sql = (
        f"UPDATE wallet_hold SET status = %(status)s, settled_amount = %(settled)s, settlement_id = {settlement},"
        " lease_spent = %(spent)s, closed_at = %(now)s WHERE id = %(hold_id)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(("WITH " + ",\n     ".join(ctes) + "\n" if ctes else "") + sql, params)


def _holds_settle_sql(accounts: dict[int, list[int]], closes: Sequence[HoldClose], *, now, revenue_id: int) -> None:
    """A batch: lock the accounts in ascending id order and update each once, then write the postings
    and close the holds, each in one set-based statement."""
    with connection.cursor() as cursor:
        if accounts:
            ids = list(accounts)
            cursor.execute("SELECT id FROM wallet_account WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", [ids])
            cursor.execute(
                "UPDATE wallet_account a SET balance = a.balance - v.cost, held = a.held - v.lift,"
                " consumed = a.consumed + v.cost, request_count = a.request_count + v.n"
                " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) v(id, cost, lift, n) WHERE a.id = v.id",
                [ids, [accounts[a][0] for a in ids], [accounts[a][1] for a in ids], [accounts[a][2] for a in ids]],
            )
        charged = [c for c in closes if c.cost]
        txn_for_hold = {}
        if charged:
            cursor.execute(
                "INSERT INTO wallet_transaction (kind, idempotency_key, description, reason, created_at)"
                " SELECT 'settlement', 'hold-settle:' || h, 'Usage', '', %s FROM unnest(%s::bigint[]) h"
                " RETURNING id, idempotency_key",
                [now, [c.hold_id for c in charged]],
            )
            txn_for_hold = {int(key.split(":")[1]): txn for txn, key in cursor.fetchall()}
            txns, entry_accounts, amounts = [], [], []
            for c in charged:
                txns += [txn_for_hold[c.hold_id]] * 2
                entry_accounts += [c.account_id, revenue_id]
                amounts += [-c.cost, c.cost]
            cursor.execute(
                "INSERT INTO wallet_entry (transaction_id, account_id, amount)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
                [txns, entry_accounts, amounts],
            )
        if closes:
            cursor.execute(
                "UPDATE wallet_hold h SET status = v.status, settled_amount = v.settled, settlement_id = v.txn,"
                " lease_spent = v.spent, closed_at = %s FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[],"
                " %s::bigint[]) v(id, status, settled, txn, spent) WHERE h.id = v.id",
                [now, [c.hold_id for c in closes], [c.status for c in closes], [c.settled for c in closes],
                 [txn_for_hold.get(c.hold_id) for c in closes], [c.lease_spent for c in closes]],
            )


def _holds_settle_orm(accounts: dict[int, list[int]], closes: Sequence[HoldClose], *, now, revenue_id: int) -> None:
    for account_id, (cost, lift, count) in accounts.items():
        Account.objects.filter(pk=account_id).update(
            balance=F("balance") - cost, held=F("held") - lift, consumed=F("consumed") + cost,
            request_count=F("request_count") + count,
        )
    for close in closes:
        txn = None
        if close.cost:
            txn = Transaction.objects.create(
                kind=Transaction.Kind.SETTLEMENT, idempotency_key=f"hold-settle:{close.hold_id}", description="Usage"
            )
            Entry.objects.bulk_create([Entry(transaction=txn, account_id=close.account_id, amount=-close.cost),
                                       Entry(transaction=txn, account_id=revenue_id, amount=close.cost)])
        Hold.objects.filter(pk=close.hold_id).update(
            status=close.status, settled_amount=close.settled, settlement=txn, lease_spent=close.lease_spent, closed_at=now
        )

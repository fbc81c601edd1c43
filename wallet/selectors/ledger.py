"""Reads of the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from wallet.models import Account, Entry, Hold, Lease, Transaction
from wallet.selectors.history import KIND_LABELS, posting_detail


@dataclass(frozen=True)
class WalletStatistics:
    balance: int
    held: int
    available: int
    consumed: int
    request_count: int

    @property
    def debt(self) -> int:
        return max(0, -self.balance)

    @property
    def in_debt(self) -> bool:
        return self.balance < 0


def wallet_statistics(*, user) -> WalletStatistics:
    """Balance, frozen, available, consumption and request count: one row read, no sums over history."""
    row = (
        Account.objects.filter(user=user, kind=Account.Kind.MAIN)
        .values("balance", "held", "consumed", "request_count")
        .first()
    ) or {"balance": 0, "held": 0, "consumed": 0, "request_count": 0}
    return WalletStatistics(available=row["balance"] - row["held"], **row)


@dataclass(frozen=True)
class ActivityRow:
    transaction_id: int
    kind: str
    kind_label: str
    description: str
    amount: int
    created_at: object
    user_reason: str = ""


def wallet_activity(*, user, limit: int = 10) -> list[ActivityRow]:
    """The latest postings on the user's main account (index-backed: account, -id)."""
    # The account's id first: a join on the user lets the planner walk every entry's id backwards.
    account_id = Account.objects.filter(user=user, kind=Account.Kind.MAIN).values_list("pk", flat=True).first()
    if account_id is None:
        return []
    entries = (
        Entry.objects.filter(account_id=account_id)
        .select_related("transaction")
        .order_by("-id")[:limit]
    )
    return [
        ActivityRow(
            transaction_id=e.transaction_id,
            kind=e.transaction.kind,
            kind_label=str(KIND_LABELS.get(e.transaction.kind) or e.transaction.get_kind_display()),
            description=posting_detail(e.transaction),  # never the operator or the internal reason
            amount=e.amount,
            created_at=e.transaction.created_at,
            user_reason=e.transaction.user_reason,
        )
        for e in entries
    ]


def user_balances(*, user_ids) -> dict[int, int]:
    return dict(
        Account.objects.filter(user_id__in=user_ids, kind=Account.Kind.MAIN).values_list("user_id", "balance")
    )


def ledger_problems(*, limit: int = 100) -> list[str]:
    """Every broken ledger invariant, as sentences (empty when the ledger is sound).

    1. every transaction has two or more entries summing to zero;
    2. every user account's cached balance equals the sum of its entries;
    3. every account's `held` equals its open holds not in a lease plus its open leases' sizes, less
       what the closed holds still in those leases spent (settlement lowered held by it at once);
    4. no account is below zero, except a main account whose debt came from settlement;
    5. every open lease's `used` equals the amounts of the holds in it (open, or closed and not yet
       folded; `used <= size` and `lease_spent <= amount` are check constraints), a hold is in a lease
       only while that lease is open, and a hold on a lease is on the lease's account.
    """
    problems: list[str] = []

    unbalanced = (
        Entry.objects.values("transaction_id")
        .annotate(total=Sum("amount"), n=Count("id"))
        .filter(~Q(total=0) | Q(n__lt=2))
        .order_by("transaction_id")[:limit]
    )
    problems += [
        f"transaction {row['transaction_id']} does not balance: {row['n']} entries summing to {row['total']}"
        for row in unbalanced
    ]
    empty = Transaction.objects.filter(entries__isnull=True).values_list("pk", flat=True)[:limit]
    problems += [f"transaction {pk} has no entries" for pk in empty]

    entry_sum = (
        Entry.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("amount")).values("s")
    )
    open_holds = (
        Hold.objects.filter(account=OuterRef("pk"), status=Hold.Status.OPEN, in_lease=False)
        .values("account")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    open_leases = (
        Lease.objects.filter(account=OuterRef("pk"), status=Lease.Status.OPEN).values("account").annotate(s=Sum("size")).values("s")
    )
    # What the closed holds still in leases spent: settlement took it from held, their lease's size keeps
    # it until the lease folds them.
    spent_in_leases = (
        Hold.objects.filter(account=OuterRef("pk"), in_lease=True).exclude(status=Hold.Status.OPEN)
        .values("account").annotate(s=Sum("lease_spent")).values("s")
    )
    accounts = Account.objects.exclude(kind=Account.Kind.SYSTEM).annotate(
        entries_total=Coalesce(Subquery(entry_sum, output_field=IntegerField()), Value(0)),
        holds_total=Coalesce(Subquery(open_holds, output_field=IntegerField()), Value(0))
        + Coalesce(Subquery(open_leases, output_field=IntegerField()), Value(0))
        - Coalesce(Subquery(spent_in_leases, output_field=IntegerField()), Value(0)),
    )
    for account in accounts.filter(~Q(balance=F("entries_total")) | ~Q(held=F("holds_total")))[:limit]:
        if account.balance != account.entries_total:
            problems.append(
                f"account {account.code}: cached balance {account.balance} != sum of entries {account.entries_total}"
            )
        if account.held != account.holds_total:
            problems.append(
                f"account {account.code}: held {account.held} != sum of open holds {account.holds_total}"
                " (an open lease counts at its size less what its closed holds spent, the holds in it in the lease)"
            )

    on_lease = Hold.objects.filter(lease=OuterRef("pk"), in_lease=True).values("lease").annotate(s=Sum("amount")).values("s")
    leases = Lease.objects.filter(status=Lease.Status.OPEN).annotate(
        holds_total=Coalesce(Subquery(on_lease, output_field=IntegerField()), Value(0))
    )
    for lease in leases.filter(~Q(used=F("holds_total")) | Q(used__gt=F("size")))[:limit]:
        problems.append(f"lease {lease.pk}: used {lease.used} != the holds in it {lease.holds_total} (size {lease.size})")
    stranded = Hold.objects.filter(in_lease=True).exclude(lease__status=Lease.Status.OPEN).values_list("pk", flat=True)[:limit]
    problems += [f"hold {pk} is still counted in a lease that is closed" for pk in stranded]
    astray = Hold.objects.filter(lease__isnull=False).exclude(account=F("lease__account")).values_list("pk", flat=True)[:limit]
    problems += [f"hold {pk} is on a lease of another account" for pk in astray]

    for debtor in Account.objects.filter(balance__lt=0).exclude(kind=Account.Kind.SYSTEM)[:limit]:
        problem = _debt_problem(debtor)
        if problem:
            problems.append(problem)
    return problems


def _debt_problem(account: Account) -> str | None:
    """Replay the account's entries: every step that ends below zero and lowers it must be a settlement."""
    if account.kind != Account.Kind.MAIN:
        return f"account {account.code} is below zero ({account.balance}) and only main accounts may owe"
    running = 0
    for entry_id, amount, kind in (
        Entry.objects.filter(account=account).order_by("id").values_list("id", "amount", "transaction__kind")
    ):
        running += amount
        if amount < 0 and running < 0 and kind != Transaction.Kind.SETTLEMENT:
            return f"account {account.code} went below zero ({running}) through a {kind} posting (entry {entry_id})"
    return None

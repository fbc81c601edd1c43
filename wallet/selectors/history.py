"""Reads: the balance history of a user's main account (every posting, the balance after each).

Two views of the same postings:

- **daily** (default): every posting one by one, except usage charges, which are one row per UTC day
  (from the daily usage rollup that settlement keeps, through `USAGE_DAYS`), placed after that day's
  other postings. A page reads the account, one page of postings, one page of days, and then the
  postings and days newer than the page (few: usage is never read row by row). Its cost does not grow
  with the number of usage charges.
- **per request**: every entry, usage charges included, newest first by entry id (keyset pages).

The balance after a row is exact: the account's cached balance minus everything newer than the row
(each page reads in one snapshot). Per request, entries are in id order within the
date range (what lies before or after the range counts as before or after it); the next page's cursor
carries the balance before its last row, and what lies after the range is summed from its postings and
the usage rollup, so no page reads usage charges outside its own span.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Max, Min, Q, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from wallet.models import Account, Entry, Transaction

T = Transaction.Kind

# Filter choices: key -> (label, transaction kinds). Invite rewards accrue to the referral account and
# reach the balance by a transfer, which is what this page shows.
KIND_FILTERS: dict[str, tuple[object, tuple[str, ...]]] = {
    "topup": (_("Top-ups"), (T.TOPUP,)),
    "bonus": (_("Bonus"), (T.BONUS, T.BONUS_CLAWBACK)),
    "usage": (_("Usage"), (T.SETTLEMENT,)),
    "code": (_("Codes"), (T.REDEMPTION,)),
    "transfer": (_("Invite reward transfers"), (T.REFERRAL_TRANSFER,)),
    "refund": (_("Refunds"), (T.REFUND, T.REFUND_REVERSAL)),
    "adjustment": (_("Adjustments"), (T.ADJUSTMENT,)),
    "grant": (_("Credits granted"), (T.SIGNUP_GRANT, T.GRANT)),
    "other": (_("Other"), (T.CREDIT, T.DEBIT)),
}

# What the user reads for each kind (the admin's labels are for operators).
KIND_LABELS: dict[str, object] = {
    T.SIGNUP_GRANT: _("Welcome credit"),
    T.GRANT: _("Promotional credit"),
    T.CREDIT: _("Credit"),
    T.DEBIT: _("Debit"),
    T.ADJUSTMENT: _("Adjustment"),
    T.SETTLEMENT: _("Usage"),
    T.TOPUP: _("Top-up"),
    T.BONUS: _("Top-up bonus"),
    T.REFUND: _("Refund"),
    T.REFUND_REVERSAL: _("Refund reversed"),
    T.BONUS_CLAWBACK: _("Bonus taken back"),
    T.REDEMPTION: _("Code redeemed"),
    T.REFERRAL_REWARD: _("Invite reward"),
    T.REFERRAL_REVERSAL: _("Invite reward reversed"),
    T.REFERRAL_TRANSFER: _("Invite rewards transferred"),
}

# Kinds whose description is written for the user (order numbers, code hints). An adjustment's
# description names the operator: never shown; its `user_reason` is.
_DESCRIPTION_SHOWN = {T.TOPUP, T.BONUS, T.REFUND, T.REFUND_REVERSAL, T.BONUS_CLAWBACK, T.REFERRAL_TRANSFER, T.GRANT,
                      T.SIGNUP_GRANT}

DAILY, PER_REQUEST = "daily", "request"

# Billing registers the reader of its daily usage rollup here (billing.apps); the wallet does not import
# billing. Called as fn(user=..., day_from=..., day_to=..., before=..., limit=...) -> [(day, cost, requests,
# first entry id, last entry id)] newest first, `before` exclusive; the ids bound the day's usage entries.
UsageDaysReader = Callable[..., list[tuple[date, int, int, int | None, int | None]]]
USAGE_DAYS: list[UsageDaysReader] = []


def usage_days_register(reader: UsageDaysReader) -> None:
    if reader not in USAGE_DAYS:
        USAGE_DAYS.append(reader)


def _usage_days(**kwargs) -> list[tuple[date, int, int, int | None, int | None]]:
    if not USAGE_DAYS:
        raise RuntimeError("no reader of the daily usage rollup is registered (billing.apps registers it)")
    return USAGE_DAYS[0](**kwargs)


@dataclass(frozen=True)
class HistoryFilters:
    mode: str = DAILY
    kind: str | None = None  # a key of KIND_FILTERS
    day_from: date | None = None  # UTC days, inclusive
    day_to: date | None = None

    def fingerprint(self) -> str:
        return f"{self.mode}|{self.kind or ''}|{self.day_from or ''}|{self.day_to or ''}"

    @property
    def per_request(self) -> bool:
        # Per request differs from daily only where usage charges are shown.
        return self.mode == PER_REQUEST and self.kind in (None, "usage")


@dataclass(frozen=True)
class HistoryRow:
    kind: str
    label: str
    detail: str
    amount: int
    balance_after: int
    day: date
    at: datetime | None = None  # None for a day of usage
    requests: int | None = None  # a day of usage: how many requests it charged
    entry_id: int | None = None

    @property
    def is_usage_day(self) -> bool:
        return self.at is None


@dataclass
class HistoryPage:
    rows: list[HistoryRow]
    next_cursor: dict | None  # opaque; the view signs it
    balance: int = 0
    queries: int = field(default=0)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _from_micros(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def posting_detail(txn: Transaction) -> str:
    """What the user reads about a posting: its reason for the user, or a description written for them."""
    if txn.user_reason:
        return txn.user_reason
    if txn.kind in _DESCRIPTION_SHOWN:
        # Fixed descriptions are stored in English and marked with gettext_noop: read in the reader's language.
        return gettext(txn.description) if txn.description else ""
    return ""


def _entry_row(entry: Entry, balance_after: int) -> HistoryRow:
    txn = entry.transaction
    return HistoryRow(
        kind=txn.kind, label=str(KIND_LABELS.get(txn.kind, txn.kind)), detail=posting_detail(txn), amount=entry.amount,
        balance_after=balance_after, day=_utc_day(txn.created_at), at=txn.created_at, entry_id=entry.pk,
    )


def _snapshot() -> None:
    """Every read of a page sees one snapshot (settlements commit all the time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def balance_history(*, user, filters: HistoryFilters, cursor: dict | None = None, limit: int = 50) -> HistoryPage:
    """One page of the user's balance history, newest first. `cursor` is the `next_cursor` of the
    previous page (for the same filters: the view checks its signature and fingerprint)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # inside a caller's transaction, the caller chose its isolation
            _snapshot()
        account = Account.objects.filter(user=user, kind=Account.Kind.MAIN).only("pk", "balance").first()
        if account is None:
            return HistoryPage(rows=[], next_cursor=None)
        if filters.per_request:
            page = _per_request(account, user, filters, cursor, limit)
        else:
            page = _daily(account, user, filters, cursor, limit)
        page.balance = account.balance
        return page


# --- daily: postings one by one, usage one row per day ----------------------------------------------
#
# Order (oldest to newest): a key (day ordinal, rank, time in microseconds, entry id); a posting has rank
# 0, a day of usage rank 1 (after that day's postings).


def _posting_key(entry: Entry) -> tuple[int, int, int, int]:
    at = entry.transaction.created_at
    return (_utc_day(at).toordinal(), 0, _micros(at), entry.pk)


def _day_key(day: date) -> tuple[int, int, int, int]:
    return (day.toordinal(), 1, 0, 0)


def _older_postings(key: tuple[int, int, int, int]) -> Q:
    day, rank, micros, entry_id = key
    if rank == 1:  # below a day of usage: that day's postings and older
        return Q(transaction__created_at__lt=_day_start(date.fromordinal(day) + timedelta(days=1)))
    at = _from_micros(micros)
    return Q(transaction__created_at__lt=at) | Q(transaction__created_at=at, pk__lt=entry_id)


def _newer_postings(key: tuple[int, int, int, int]) -> Q:
    day, rank, micros, entry_id = key
    if rank == 1:
        return Q(transaction__created_at__gte=_day_start(date.fromordinal(day) + timedelta(days=1)))
    at = _from_micros(micros)
    return Q(transaction__created_at__gt=at) | Q(transaction__created_at=at, pk__gt=entry_id)


def _daily(account: Account, user, filters: HistoryFilters, cursor: dict | None, limit: int) -> HistoryPage:
    before = tuple(cursor["k"]) if cursor else None
    kinds = KIND_FILTERS[filters.kind][1] if filters.kind else None
    items: list[tuple[tuple, object]] = []
    if kinds is None or T.SETTLEMENT not in kinds:
        postings = Entry.objects.filter(account=account, statement_kind__isnull=False)
        if kinds:
            postings = postings.filter(statement_kind__in=kinds)
        if filters.day_from:
            postings = postings.filter(transaction__created_at__gte=_day_start(filters.day_from))
        if filters.day_to:
            postings = postings.filter(transaction__created_at__lt=_day_start(filters.day_to + timedelta(days=1)))
        if before:
            postings = postings.filter(_older_postings(before))
        for entry in postings.select_related("transaction").order_by("-transaction__created_at", "-pk")[: limit + 1]:
            items.append((_posting_key(entry), entry))
    if kinds is None or T.SETTLEMENT in kinds:
        for day, cost, requests, _, _ in _usage_days(
            user=user, day_from=filters.day_from, day_to=filters.day_to,
            before=date.fromordinal(before[0]) if before else None, limit=limit + 1,
        ):
            if cost:  # free requests post nothing
                items.append((_day_key(day), (day, cost, requests)))
    items.sort(key=lambda item: item[0], reverse=True)
    more = len(items) > limit
    items = items[:limit]
    if not items:
        return HistoryPage(rows=[], next_cursor=None)

    # Everything newer than the page's last row, whatever the filters: postings and days of usage.
    bottom = items[-1][0]
    newer = Entry.objects.filter(account=account, statement_kind__isnull=False).filter(_newer_postings(bottom))
    amounts: list[tuple[tuple, int]] = [
        ((_utc_day(at).toordinal(), 0, _micros(at), pk), amount)
        for pk, amount, at in newer.values_list("pk", "amount", "transaction__created_at")
    ]
    amounts += [
        (_day_key(day), -cost)
        for day, cost, _, _, _ in _usage_days(user=user, day_from=date.fromordinal(bottom[0]), day_to=None, before=None, limit=None)
        if _day_key(day) > bottom
    ]
    amounts.sort(key=lambda item: item[0], reverse=True)
    after_of: dict[tuple, int] = {}
    running = 0
    for key, amount in amounts:
        after_of[key] = running
        running += amount

    rows = []
    for key, item in items:
        # The sum of everything newer than this row: the running total of the first newer item below it.
        after = _after(key, amounts, after_of)
        balance_after = account.balance - after
        if isinstance(item, Entry):
            rows.append(_entry_row(item, balance_after))
        else:
            day, cost, requests = item  # type: ignore[misc]
            rows.append(HistoryRow(kind=T.SETTLEMENT, label=str(KIND_LABELS[T.SETTLEMENT]), detail="", amount=-cost,
                                   balance_after=balance_after, day=day, requests=requests))
    return HistoryPage(rows=rows, next_cursor={"k": list(bottom)} if more else None)


def _after(key: tuple, amounts: list[tuple[tuple, int]], after_of: dict[tuple, int]) -> int:
    if key in after_of:
        return after_of[key]
    # The page's last row is not among `amounts` (they are strictly newer): the sum of all of them.
    return sum(amount for k, amount in amounts if k > key)


# --- per request: every entry, newest first by id ---------------------------------------------------


def _per_request(account: Account, user, filters: HistoryFilters, cursor: dict | None, limit: int) -> HistoryPage:
    """Entries in the order (range bucket, id): entries before the date range, in it, after it; by id
    within the range. Everything after the range is summed from the postings' index and the usage
    rollup, so no page reads the usage charges outside its own span."""
    in_range = Q()
    if filters.day_from:
        in_range &= Q(transaction__created_at__gte=_day_start(filters.day_from))
    if filters.day_to:
        end = _day_start(filters.day_to + timedelta(days=1))
        in_range &= Q(transaction__created_at__lt=end)
    everything = Entry.objects.filter(account=account).filter(in_range)
    if filters.day_from or filters.day_to:
        bounds = _range_bounds(account, user, filters, in_range)
        if bounds is None:
            return HistoryPage(rows=[], next_cursor=None)
        everything = everything.filter(pk__gte=bounds[0], pk__lte=bounds[1])
    entries = everything.filter(statement_kind__isnull=True) if filters.kind == "usage" else everything
    if cursor:
        entries = entries.filter(pk__lt=cursor["i"])
    page = list(entries.select_related("transaction").order_by("-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    if not page:
        return HistoryPage(rows=[], next_cursor=None)
    top, bottom = page[0].pk, page[-1].pk
    postings = everything.filter(statement_kind__isnull=False)
    if cursor:
        # The balance before the previous page's last row, less what lies between it and this page.
        above = everything.filter(pk__gt=top, pk__lt=cursor["i"]).aggregate(s=Sum("amount"))["s"] or 0
        balance = cursor["b"] - above
    else:
        # After the top row: postings of the range above it (no usage charge of the range lies above the
        # newest one shown), and everything after the range: its postings and its days of usage.
        above = postings.filter(pk__gt=top).aggregate(s=Sum("amount"))["s"] or 0
        if filters.day_to:
            above += Entry.objects.filter(account=account, statement_kind__isnull=False,
                                          transaction__created_at__gte=end).aggregate(s=Sum("amount"))["s"] or 0
            above -= sum(row[1] for row in _usage_days(user=user, day_from=filters.day_to + timedelta(days=1),
                                                       day_to=None, before=None, limit=None))
        balance = account.balance - above
    # Walk back through every entry of the page's span (the rows, and other kinds or days between them).
    shown = {entry.pk: entry for entry in page}
    after: dict[int, int] = {}
    for pk, amount in everything.filter(pk__gte=bottom, pk__lte=top).order_by("-pk").values_list("pk", "amount"):
        if pk in shown:
            after[pk] = balance
        balance -= amount
    rows = []
    for entry in page:
        row = _entry_row(entry, after[entry.pk])
        if entry.statement_kind is None:
            row = HistoryRow(kind=T.SETTLEMENT, label=str(KIND_LABELS[T.SETTLEMENT]), detail="", amount=entry.amount,
                             balance_after=after[entry.pk], day=row.day, at=row.at, entry_id=entry.pk)
        rows.append(row)
    last = page[-1]
    return HistoryPage(rows=rows, next_cursor={"i": last.pk, "b": balance} if more else None)


def _range_bounds(account: Account, user, filters: HistoryFilters, in_range: Q) -> tuple[int, int] | None:
    """The lowest and highest entry id of a date range: its usage entries' from the rollup, its postings'
    from their index. The page then seeks between them instead of walking the entry index from the newest."""
    ids = [bound for row in _usage_days(user=user, day_from=filters.day_from, day_to=filters.day_to, before=None, limit=None)
           for bound in row[3:] if bound is not None]
    postings = Entry.objects.filter(account=account, statement_kind__isnull=False).filter(in_range)
    low_high = postings.aggregate(low=Min("pk"), high=Max("pk"))
    ids += [v for v in low_high.values() if v is not None]
    return (min(ids), max(ids)) if ids else None

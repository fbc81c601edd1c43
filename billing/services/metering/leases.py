"""Leases for hot accounts (PostgreSQL): this process's slices of an account's balance, so a hot
account's holds lock a lease row instead of the account row.

Each process keeps, per hot account, up to METERING_LEASE_STRIPES leases (a thread always uses the same
stripe), cached here as (lease id, deadline). A hold on a hot account goes:

1. on the thread's lease, with one conditional UPDATE of the lease row (`sql.lease_hold`);
2. if it does not fit, or the lease is in the last third of its life, the lease is resized in the same
   transaction: its closed holds are folded in (settlement never locks a lease: it records on the hold
   what it spent, and the holder takes it out of the lease here), then it is renewed for
   METERING_LEASE_SECONDS with its size set to what it holds plus the headroom the account's request
   rate needs (the unused part above that is handed back), and the hold tried again;
3. if the lease is gone (the sweeper expired it) a new one is taken;
4. otherwise the caller falls back to today's path (the account row), and before refusing a hold it
   consolidates if that would make the hold fit (its transaction rolled back first, so no lock is held
   out of order): every open lease of the account is shrunk to its used part, so money reserved in
   other processes' leases is not lost to the request.

An account is hot for this process once it sees METERING_LEASE_MIN_RATE holds per second on it. A
lease is never more than a quarter of the account's available balance (`SHARE`) and never less than
`MIN_HOLDS` holds of the current estimate: an account too small for that keeps today's path. The cache
is only written after the transaction that took or renewed the lease commits.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction

from billing.services.metering import sql
from wallet.services.ledger import LeaseState, lease_resize, lease_take, leases_consolidate, leases_slack

SHARE = 4  # a lease takes at most a quarter of the account's available balance
MIN_HOLDS = 8  # and at least this many holds of the request's estimate, else the account is small


def _holder() -> str:
    """host:pid of this process (read at take time: a forked worker is not its parent)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Account:
    second: int = 0  # the current one-second window (epoch seconds)
    count: int = 0  # holds in it
    nanos: int = 0  # and their amounts
    last_count: int = 0  # the previous window's
    last_nanos: int = 0
    small_until: float = 0.0  # a lease was refused (the account is small): today's path until then
    leases: dict[int, tuple[int, datetime]] = field(default_factory=dict)  # stripe -> (lease id, deadline)

    def note(self, amount: int, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.last_count, self.last_nanos = (self.count, self.nanos) if second == self.second + 1 else (0, 0)
            self.second, self.count, self.nanos = second, 0, 0
        self.count += 1
        self.nanos += amount

    def rate(self) -> tuple[int, int]:
        """Holds and nanos per second (the larger of this window and the last)."""
        return max(self.count, self.last_count), max(self.nanos, self.last_nanos)


_lock = threading.Lock()
_accounts: dict[int, _Account] = {}
_stripe_counter = itertools.count()
_local = threading.local()


def enabled() -> bool:
    return bool(settings.METERING_LEASES)


def _stripe() -> int:
    stripe = getattr(_local, "stripe", None)
    if stripe is None:
        stripe = _local.stripe = next(_stripe_counter)
    return stripe % max(settings.METERING_LEASE_STRIPES, 1)


def _remember(account_id: int, stripe: int, state: LeaseState | None) -> None:
    def write() -> None:
        with _lock:
            entry = _accounts.setdefault(account_id, _Account())
            if state is None:
                entry.leases.pop(stripe, None)
            else:
                entry.leases[stripe] = (state.lease_id, state.expires_at)

    transaction.on_commit(write)


def adopt(state: LeaseState) -> None:
    """Use this lease for the calling thread's holds on its account, from now on (tests and tools)."""
    with _lock:
        _accounts.setdefault(state.account_id, _Account()).leases[_stripe()] = (state.lease_id, state.expires_at)


def forget() -> None:
    """Drop every cached lease and rate (tests; the leases themselves stay until returned or expired)."""
    with _lock:
        _accounts.clear()


def place(*, account_id: int, amount: int, now: datetime) -> tuple[int, int] | None:
    """Place a hold of `amount` on one of this process's leases of the account: (lease id, the account's
    available balance), or None for today's path (the account is not hot here, is small, or its leases
    cannot take it)."""
    stripe = _stripe()
    clock = time.time()
    with _lock:
        entry = _accounts.get(account_id)
        if entry is None:
            if len(_accounts) > 50_000:  # forget cold accounts now and then
                for key in [k for k, v in _accounts.items() if not v.leases and v.second < clock - 60]:
                    del _accounts[key]
            entry = _accounts[account_id] = _Account()
        entry.note(amount, clock)
        cached = entry.leases.get(stripe)
        holds_per_s, nanos_per_s = entry.rate()
        hot = holds_per_s >= settings.METERING_LEASE_MIN_RATE and clock >= entry.small_until
    if cached is None and not hot:
        return None
    seconds = settings.METERING_LEASE_SECONDS
    stripes = max(settings.METERING_LEASE_STRIPES, 1)
    # Headroom: what this stripe places in a lease's lifetime at the current rate, at least MIN_HOLDS holds.
    headroom = max(MIN_HOLDS * amount, nanos_per_s * seconds // stripes)
    if cached is not None:
        lease_id, deadline = cached
        due = (deadline - now).total_seconds() < seconds / 3
        if not due:
            placed = _on(lease_id, amount, now)
            if placed is not None:
                return placed
        if not enabled() or (not due and clock < entry.small_until):  # the account could not grow it just now
            return None
        # Due: renewed to fit the rate (handing back what it does not need). Full: the closed holds folded in
        # and grown only if that is not room enough (the account row is locked only to grow).
        state = lease_resize(lease_id=lease_id, headroom=headroom + amount, share=SHARE, seconds=seconds, now=now,
                             shrink=due)
        _remember(account_id, stripe, state)
        if state is not None:
            placed = _on(lease_id, amount, now)
            if placed is None:
                _small(entry, clock)
            return placed
    if not enabled() or not hot:
        return None
    state = lease_take(account_id=account_id, want=headroom + amount, minimum=MIN_HOLDS * amount, share=SHARE,
                       seconds=seconds, holder=_holder(), now=now)
    if state is None:
        _small(entry, clock)
        return None
    _remember(account_id, stripe, state)
    return _on(state.lease_id, amount, now)


def _small(entry: _Account, clock: float) -> None:
    """The account could not give a lease (or grow one) enough: today's path for a second."""
    with _lock:
        entry.small_until = clock + 1.0


def _on(lease_id: int, amount: int, now: datetime) -> tuple[int, int] | None:
    available = sql.lease_hold(lease_id=lease_id, amount=amount, now=now)
    return None if available is None else (lease_id, available)


def worth_consolidating(*, account_id: int, amount: int) -> bool:
    """Whether the account's available balance plus its leases' unused parts (a lock-free read) would fit
    a hold of `amount` the account alone refused: an account spent to the last cent does not lock its
    leases on every refused request."""
    return leases_slack(account_id=account_id) >= amount


def consolidate(*, account_id: int) -> int:
    """Before refusing a hold: hand back the unused part of every open lease of the account (in a
    transaction of its own: the leases in id order, then the account)."""
    return leases_consolidate(account_id=account_id)

"""Writes: metering (hold -> usage report -> settlement), the gateway's path for every API request.

The statements run in explicit SQL on PostgreSQL (`sql`) and through the ORM elsewhere (`orm`, the SQLite
quickstart); `FORCE_PORTABLE` makes PostgreSQL run the ORM version too (the tests run both).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken, GatewayKey, Generation
from billing.services.alerts import settlement_alerts
from billing.services.budgets import budget_refusal, token_rate_check
from billing.services.metering import leases, orm, sql
from billing.services.metering.pricing import Usage, charge, estimate_usage, hold_amount, hold_bound
from billing.services.tokens import key_hash, key_kind, token_authenticate
from synstar.accounts.selectors import HOLD, account_policy
from synstar.db import atomic_with_retry, retry_statement
from synstar.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound, PaymentRequired, PermissionDenied
from synstar.i18n import lazy_format
from synstar.money import format_usd, parse_usd
from wallet.models import Hold
from wallet.services.autotopup import autotopup_check
from wallet.services.ledger import AccountCharge, HoldClose, hold_refusal_error, hold_release, holds_settle, leases_expire

logger = logging.getLogger(__name__)


class TokenQuotaExceeded(PaymentRequired):
    code = "token_quota_exceeded"
    default_message = _("This API token has reached its quota.")




# --- metering -------------------------------------------------------------------------------------


def _hold_ttl() -> timedelta:
    return timedelta(seconds=settings.METERING_HOLD_TTL_SECONDS)


def _min_hold() -> int:
    return parse_usd(settings.METERING_MIN_HOLD_USD, allow_zero=True, field="METERING_MIN_HOLD_USD")


def _check_usable(*, found, model_name: str, client_ip: str | None, now: datetime) -> None:
    # The account-status policy, from the status columns the one lookup read.
    refusal = account_policy(status=found.user_status, review_reason=found.review_reason, is_active=found.user_active).refusal(HOLD)
    if refusal is not None:
        raise refusal
    if not found.is_enabled:
        raise PermissionDenied(_("This API token is disabled."), code="token_disabled")
    if found.expires_at is not None and found.expires_at <= now:
        raise PermissionDenied(_("This API token has expired."), code="token_expired")
    if found.allowed_models and model_name not in found.allowed_models:
        raise PermissionDenied(lazy_format(_("This API token may not use the model %(model_name)s."), model_name=repr(model_name)), code="model_not_allowed")
    if found.allowed_ips:
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            raise PermissionDenied(_("This API token only accepts requests from listed IPs."), code="ip_not_allowed") from None
        if not any(address in ipaddress.ip_network(net) for net in found.allowed_ips):
            raise PermissionDenied(lazy_format(_("This API token does not accept requests from %(address)s."), address=address), code="ip_not_allowed")


def metering_hold(
    *,
    gateway: GatewayKey,
    token_key: str,
    model_name: str,
    endpoint: str,
    input_tokens: int = 0,
    max_output_tokens: int | None = None,
    units: Decimal = Decimal(0),
    client_ip: str | None = None,
    request_id: str | None = None,
    hold_seconds: int | None = None,
) -> Generation:
    """Pre-deduct: freeze the request's upper bound on account and token and open `gen-...` in state held.

    The bound is `billing.pricing.hold_bound` (no `max_output_tokens` means the model's default maximum
    output), frozen at `hold_amount`, at least METERING_MIN_HOLD_USD. A request that gives no bound is
    refused (400) and writes nothing. A retried hold with the same gateway `request_id` returns the first
    generation.
    """
    Usage(input_tokens=input_tokens, output_tokens=max_output_tokens or 0, units=units).validate()
    request = dict(gateway=gateway, token_key=token_key, model_name=model_name, endpoint=endpoint,
                   input_tokens=input_tokens, max_output_tokens=max_output_tokens, units=units, client_ip=client_ip,
                   request_id=request_id, hold_seconds=hold_seconds)
    try:
        try:
            return _metering_hold(**request, consolidate=True)
        except _Consolidate as needed:
            # Rolled back (no lock kept): hand the leases' unused parts back in a transaction of its own
            # (leases, then the account: the lock order), then try once more.
            leases.consolidate(account_id=needed.account_id)
            return _metering_hold(**request, consolidate=False)
    except IntegrityError:
        if request_id:
            existing = Generation.objects.filter(gateway=gateway, request_id=request_id).first()
            if existing is not None:
                return existing
        raise


class _Consolidate(Exception):  # noqa: N818 (a signal, not an error)
    """The hold did not fit on the account, but with the unused parts of the account's leases it would."""

    def __init__(self, account_id: int):
        self.account_id = account_id


@atomic_with_retry
def _metering_hold(
    *, gateway, token_key, model_name, endpoint, input_tokens, max_output_tokens, units, client_ip, request_id, hold_seconds,
    consolidate: bool,
) -> Generation:
    kind = key_kind(token_key or "")
    if kind != "sk":
        token_authenticate(raw_key=token_key)  # raises the right error for a gw- key or garbage
    found = _sql().lookup(key_hash=key_hash(token_key), model=model_name)
    if found is None:
        raise AuthenticationFailed(_("Invalid API token."), code="invalid_api_key")
    if request_id:
        existing = Generation.objects.filter(gateway=gateway, request_id=request_id).first()
        if existing is not None:
            if existing.token_id != found.token_id:
                raise Conflict(_("This request_id was already used for another token."), code="request_id_reused")
            return existing
    now = timezone.now()
    _check_usable(found=found, model_name=model_name, client_ip=client_ip, now=now)
    if found.model_id is None:
        raise InvalidRequest(lazy_format(_("Unknown model %(model_name)s."), model_name=repr(model_name)), code="model_not_found")
    if not found.group_allowed:
        raise PermissionDenied(lazy_format(_("The group %(group_name)s is no longer available to this account."), group_name=repr(found.group_name)), code="group_not_allowed")
    if found.account_id is None:
        raise NotFound(_("The account has no wallet yet."), code="account_not_found")
    snapshot = found.price
    bound = hold_bound(snapshot, input_tokens=input_tokens, max_output_tokens=max_output_tokens, units=units)
    est_output = bound.output_tokens  # the maximum output held for; a success reported without usage is charged it
    estimate = hold_amount(snapshot, bound, found.rate, minimum=_min_hold())
    deadline = now + (timedelta(seconds=hold_seconds) if hold_seconds else _hold_ttl())
    token_rate_check(token_id=found.token_id, rpm_limit=found.rpm_limit)
    # Lock order: lease (a hot account's) or account, then token.
    lease_id = available = None
    if _sql() is sql:
        lease_id, available = leases.place(account_id=found.account_id, amount=estimate, now=now) or (None, None)
    if lease_id is None:
        available = _sql().account_hold(account_id=found.account_id, amount=estimate)
        if available is None and consolidate and _sql() is sql and leases.worth_consolidating(account_id=found.account_id,
                                                                                             amount=estimate):
            raise _Consolidate(found.account_id)
    if available is None:
        raise hold_refusal_error(account_id=found.account_id, amount=estimate)
    public_id = f"gen-{secrets.token_urlsafe(18)}"
    opened = _sql().token_hold_and_open(
        est=estimate, now=now, token_id=found.token_id, token_held=found.limited, account_id=found.account_id,
        lease_id=lease_id, deadline=deadline,
        public_id=public_id,
        user_id=found.user_id, gateway_id=gateway.pk, request_id=request_id or None, model_id=found.model_id,
        group_name=found.group_name, endpoint=endpoint[:100], client_ip=client_ip or None, est_input=input_tokens,
        est_output=est_output, est_units=units, rate=found.rate, snapshot=snapshot,
    )
    if opened is None:
        budget_error = budget_refusal(token_id=found.token_id, amount=estimate, now=now)
        if budget_error is not None:
            raise budget_error
        remaining = max((found.quota or 0) - found.used - found.held, 0)
        raise TokenQuotaExceeded(
            lazy_format(_("This API token has $%(remaining)s of its quota left; the request needs up to $%(needed)s."), remaining=format_usd(remaining, places=None), needed=format_usd(estimate, places=None)),
            quota_remaining=format_usd(remaining, places=None),
        )
    generation = Generation(
        pk=opened[0], public_id=public_id, user_id=found.user_id, token_id=found.token_id, gateway_id=gateway.pk,
        request_id=request_id or None, hold_id=opened[1], model_id=found.model_id, group_name=found.group_name,
        endpoint=endpoint[:100], client_ip=client_ip or None, state=Generation.State.HELD, est_input_tokens=input_tokens,
        est_output_tokens=est_output, est_units=units, rate=found.rate, price_snapshot=snapshot,
        estimated_cost=estimate, created_at=now, deadline=deadline,
    )
    generation._state.adding = False
    generation.model_name = model_name
    generation.available = available
    return generation


@retry_statement
def metering_report(
    *,
    gateway: GatewayKey,
    public_id: str,
    outcome: str,
    usage: Usage | None = None,
    error: str = "",
    counted: bool = False,
) -> Generation:
    """Store the usage report on the generation (state reported) and queue settlement on commit.

    The report is one conditional UPDATE, atomic by itself (the read before it only takes the prices and
    the estimate, fixed at hold time): no explicit transaction is needed. A second report, or one for a
    generation already closed, changes nothing. A report after the sweeper expired the hold is still
    accepted and settles once. Usage that costs more than the hold froze is still charged in full, and
    the generation is marked `over_estimate`. `counted` says the relay counted the usage from the output
    itself (no upstream figure): the charge is recorded with basis `counted`.
    """
    if outcome not in (Generation.Outcome.SUCCEEDED, Generation.Outcome.FAILED):
        raise InvalidRequest(_("status must be 'succeeded' or 'failed'."), code="invalid_status")
    if usage is not None:
        usage.validate()
    target = _sql().report_target(public_id=public_id, gateway_id=gateway.pk)
    if target is None:
        raise NotFound(_("No such generation for this gateway."), code="generation_not_found")
    generation_id, estimate, snapshot, rate = target
    over_estimate = bool(
        usage is not None and outcome == Generation.Outcome.SUCCEEDED and charge(snapshot, usage, rate) > estimate
    )
    reported = _sql().report(
        input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None, units=usage.units if usage else None, outcome=outcome,
        error=(error or "")[:4000], over_estimate=over_estimate, now=timezone.now(), generation_id=generation_id,
        basis=Generation.ChargeBasis.COUNTED if counted and usage is not None else "",
    )
    if reported is None:  # already reported or closed: answer what it is
        return Generation.objects.only("id", "public_id", "state", "over_estimate").get(pk=generation_id)
    transaction.on_commit(lambda: _enqueue_settlement(generation_id))
    generation = Generation(
        pk=generation_id, public_id=public_id, state=Generation.State.REPORTED, over_estimate=over_estimate
    )
    generation._state.adding = False
    return generation


# Set by tests to run the portable implementation on PostgreSQL too.
FORCE_PORTABLE = False


def _sql():
    """The hot path's statements: explicit PostgreSQL SQL, or the portable ORM version elsewhere."""
    return sql if connection.vendor == "postgresql" and not FORCE_PORTABLE else orm


_batch_lock = threading.Lock()
_batch_due = 0.0  # when this process's last queued batch task runs (epoch seconds)


def _enqueue_settlement(generation_id: int) -> None:
    """Queue a settlement batch, at most one per window per process.

    Runs after the report committed. If a batch task queued by this process is still due to run (its ETA
    is later than now), that task will see this report, so nothing is queued. Otherwise a task is queued
    to run one window from now, settling every report committed by then. The sweeper backs this up.
    """
    global _batch_due
    from billing.tasks import generations_settle_task

    window = settings.METERING_SETTLE_BATCH_WINDOW_MS / 1000
    with _batch_lock:
        now = time.time()
        if now < _batch_due:
            return
        _batch_due = now + window
    try:
        generations_settle_task.apply_async(countdown=window)
    except Exception:  # the broker is down: the sweeper settles it later
        with _batch_lock:
            _batch_due = 0.0
        logger.exception("could not queue settlement (generation %s); the sweeper will settle it", generation_id)


def generations_settle_batch(*, limit: int = 500) -> int:
    """Settle reported generations in batches until none is left; returns how many were closed. After each
    batch commits, the alerts of its accounts and tokens are checked (low balance, token 80% / 100%)."""
    total = 0
    while True:
        touched: list[tuple[int, int]] = []
        closed = _settle_batch(limit=limit, touched=touched)
        if touched:
            settlement_alerts(account_ids=[a for a, _ in touched], token_ids=[t for _, t in touched])
        total += closed
        if closed < limit:
            return total


@atomic_with_retry
def _settle_batch(*, limit: int, touched: list[tuple[int, int]]) -> int:
    touched.clear()  # a retried transaction starts again
    if _sql() is not sql:  # portable: one by one, in this transaction
        ids = list(Generation.objects.filter(state=Generation.State.REPORTED).order_by("id").values_list("pk", flat=True)[:limit])
        for generation_id in ids:
            row = _settle_one(generation_id)
            if row is not None:
                touched.append((row.account_id, row.token_id))
        return len(ids)
    rows = sql.batch_lock(limit)
    touched.extend((row.account_id, row.token_id) for row in rows)
    if not rows:
        return 0
    now = timezone.now()
    settled = [_settlement(row) for row in rows]
    # Accounts (locked in id order by the ledger), then tokens: the lock order of every path. No lease is
    # locked: a hold in a lease records what it spent, and the lease's holder folds it in later.
    holds_settle(charges=[s[0] for s in settled], closes=[s[1] for s in settled if s[1] is not None], now=now)
    sql.generations_close([s[2] for s in settled], now=now)
    sql.usage_days_add([row.generation_id for row in rows])  # the daily rollup: one upsert per batch
    _autotopup_after_commit([s[0] for s in settled])
    return len(rows)


def _settlement(row: sql.SettleRow) -> tuple[AccountCharge, HoldClose | None, sql.GenerationClose]:
    """How a reported generation closes: its account's charge, its hold's close (none for a failed request
    whose hold the sweeper already expired), its token's and its own. A hold still in its lease lifts
    from the account's held only what it spent (the cost, up to the hold), recorded on the hold for the
    lease's holder to fold in later; the rest of it goes back to the lease's free part then."""
    lift = row.estimate if row.hold_open else 0
    token_lift = lift if row.token_held else 0  # a token without limits was not held
    in_lease = row.hold_open and row.in_lease
    failed = row.outcome == Generation.Outcome.FAILED
    if failed:
        cost, basis = 0, ""
    else:
        usage, basis = _usage_to_charge(row)
        cost = charge(row.snapshot, usage, row.rate)
    spent = min(cost, lift) if in_lease else 0
    account = AccountCharge(row.account_id, cost=cost, lift=spent if in_lease else lift, count=0 if failed else 1)
    if failed:
        hold = HoldClose(row.hold_id, row.account_id, Hold.Status.RELEASED, None, 0) if row.hold_open else None
        return (
            account,
            hold,
            sql.GenerationClose(row.generation_id, row.token_id, Generation.State.RELEASED, cost=0, lift=token_lift, basis=""),
        )
    return (
        account,
        HoldClose(row.hold_id, row.account_id, Hold.Status.SETTLED, settled=cost, cost=cost, lease_spent=spent),
        sql.GenerationClose(row.generation_id, row.token_id, Generation.State.SETTLED, cost=cost, lift=token_lift, basis=basis),
    )


def _usage_to_charge(row: sql.SettleRow) -> tuple[Usage, str]:
    if row.input_tokens is None and row.output_tokens is None and row.units is None:
        return (
            estimate_usage(row.snapshot, input_tokens=row.est_input, max_output_tokens=row.est_output, units=row.est_units),
            Generation.ChargeBasis.ESTIMATE,
        )
    return (
        Usage(input_tokens=row.input_tokens or 0, output_tokens=row.output_tokens or 0,
              cached_tokens=row.cached_tokens or 0, units=row.units or Decimal(0)),
        row.basis or Generation.ChargeBasis.REPORTED,
    )


def generation_settle(*, generation_id: int, fetch: bool = True) -> Generation | None:
    """Charge a reported generation (or release it if it failed), exactly once.

    Lock order: generation, hold, account, token. Returns the generation as it now is (if `fetch`).
    """
    row = _generation_settle(generation_id=generation_id)
    if row is not None:
        settlement_alerts(account_ids=[row.account_id], token_ids=[row.token_id])
    return Generation.objects.filter(pk=generation_id).first() if fetch else None


@atomic_with_retry
def _generation_settle(*, generation_id: int) -> sql.SettleRow | None:
    return _settle_one(generation_id)


def _settle_one(generation_id: int) -> sql.SettleRow | None:
    """Settle one reported generation in the caller's transaction; the row it settled, or None."""
    row = _sql().settle_lock(generation_id)
    if row is None or row.state != Generation.State.REPORTED:
        return None
    account, hold, generation = _settlement(row)
    now = timezone.now()
    holds_settle(charges=[account], closes=[hold] if hold else [], now=now, orm=_sql() is orm)
    _sql().generations_close([generation], now=now)
    _sql().usage_days_add([generation_id])  # the daily rollup
    _autotopup_after_commit([account])
    return row


def _autotopup_after_commit(charges: list[AccountCharge]) -> None:
    """Auto top-up: once the settlement commits, the charged accounts are checked against their thresholds
    (wallet/services/autotopup.py; one query when none is below, and it never fails the settlement)."""
    account_ids = sorted({c.account_id for c in charges if c.cost > 0})
    if account_ids:
        transaction.on_commit(lambda: autotopup_check(account_ids=account_ids))


@atomic_with_retry
def generation_expire(*, generation_id: int, now: datetime | None = None) -> bool:
    """Release one overdue hold with no charge and mark it expired (skipped if someone holds the row)."""
    now = now or timezone.now()
    generation = (
        Generation.objects.select_for_update(skip_locked=True)
        .filter(pk=generation_id, state=Generation.State.HELD, deadline__lt=now)
        .first()
    )
    if generation is None:
        return False
    hold_release(hold_id=generation.hold_id, expired=True)
    if generation.token_held:
        ApiToken.objects.filter(pk=generation.token_id).update(held=F("held") - generation.estimated_cost)
    generation.state = Generation.State.EXPIRED
    generation.expired_at = now
    generation.save(update_fields=["state", "expired_at"])
    return True


def metering_sweep(*, now: datetime | None = None, batch: int = 1000) -> dict[str, int]:
    """Beat: release leases past their deadline (their holder died or stopped renewing); expire holds
    past their deadline; settle reports whose task was lost. Each in its own transaction, so the sweeper
    never holds two accounts' locks at once."""
    now = now or timezone.now()
    leases_released = leases_expire(now=now, batch=batch)
    overdue = Generation.objects.filter(state=Generation.State.HELD, deadline__lt=now).values_list("pk", flat=True)[:batch]
    expired = sum(generation_expire(generation_id=pk, now=now) for pk in list(overdue))
    stale_before = now - timedelta(seconds=settings.METERING_SETTLE_STALE_SECONDS)
    stale = Generation.objects.filter(state=Generation.State.REPORTED, reported_at__lt=stale_before).values_list(
        "pk", flat=True
    )[:batch]
    settled = 0
    for pk in list(stale):
        generation = generation_settle(generation_id=pk)
        settled += generation is not None and generation.state != Generation.State.REPORTED
    if expired or settled or leases_released:
        logger.info("metering sweep: %d holds expired, %d lost settlements recovered, %d leases released",
                    expired, settled, leases_released)
    return {"expired": expired, "settled": settled, "leases": leases_released}

"""The metering hot path's operations written with the ORM, for databases other than PostgreSQL (the
SQLite quickstart of `make run`). Same functions and results as billing/services/metering/sql.py; the test suite runs
the metering scenarios through both on PostgreSQL so they cannot drift apart."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When

from billing.models import ApiToken, Generation, ModelPrice, TierModelRate, UsageDay
from billing.selectors.budgets import period_start
from billing.services.metering.sql import PRICE_COLUMNS, GenerationClose, Lookup, SettleRow
from wallet.models import Account, Entry, Hold


def lookup(*, key_hash: str, model: str) -> Lookup | None:
    token = ApiToken.objects.select_related("user", "group__tier").filter(key_hash=key_hash, deleted_at__isnull=True).first()
    if token is None:
        return None
    price = ModelPrice.objects.filter(name=model, is_active=True).first()
    group = token.group
    override = TierModelRate.objects.filter(tier=group.tier, model=price).values_list("rate", flat=True).first() if price else None
    return Lookup(
        token_id=token.pk, user_id=token.user_id, quota=token.quota, used=token.used, held=token.held,
        is_enabled=token.is_enabled, expires_at=token.expires_at, allowed_models=token.allowed_models,
        allowed_ips=token.allowed_ips, user_status=token.user.status, review_reason=token.user.review_reason,
        user_active=token.user.is_active, group_name=group.name,
        group_allowed=group.is_public or group.allowed_users.filter(pk=token.user_id).exists(),
        account_id=Account.objects.filter(user_id=token.user_id, kind=Account.Kind.MAIN).values_list("pk", flat=True).first(),
        model_id=price.pk if price else None, rate=override if override is not None else group.tier.rate,
        price={c: getattr(price, c) for c in PRICE_COLUMNS} if price else {}, rpm_limit=token.rpm_limit,
        budget=token.budget,
    )


def account_hold(*, account_id: int, amount: int) -> int | None:
    rows = Account.objects.filter(pk=account_id, kind=Account.Kind.MAIN, balance__gte=F("held") + amount)
    if not rows.update(held=F("held") + amount):
        return None
    account = Account.objects.only("balance", "held").get(pk=account_id)
    return account.balance - account.held


def token_hold_and_open(**p) -> tuple[int, int] | None:
    quota_ok = Q(quota__isnull=True) | Q(quota__gte=F("used") + F("held") + p["est"])
    # The budget predicate (sql.BUDGET_OK): the period's settled usage, open holds and this one fit.
    period = ApiToken.objects.filter(pk=p["token_id"]).values_list("budget_period", flat=True).first()
    start = period_start(period=period or "month", now=p["now"])
    period_used = Case(When(period_start__gte=start, then=F("period_used")), default=Value(0))
    budget_ok = Q(budget__isnull=True) | Q(budget_period=period, budget__gte=F("held") + p["est"] + period_used)
    if p["token_held"] and not ApiToken.objects.filter(quota_ok, budget_ok, pk=p["token_id"]).update(
        held=F("held") + p["est"], last_used_at=p["now"]
    ):
        return None
    hold = Hold.objects.create(account_id=p["account_id"], lease_id=p.get("lease_id"), in_lease=p.get("lease_id") is not None,
                               amount=p["est"], expires_at=p["deadline"])
    generation = Generation.objects.create(
        public_id=p["public_id"], user_id=p["user_id"], token_id=p["token_id"], gateway_id=p["gateway_id"],
        request_id=p["request_id"], hold=hold, model_id=p["model_id"], group_name=p["group_name"], endpoint=p["endpoint"],
        client_ip=p["client_ip"], est_input_tokens=p["est_input"], est_output_tokens=p["est_output"], est_units=p["est_units"],
        rate=p["rate"], price_snapshot=p["snapshot"], estimated_cost=p["est"], deadline=p["deadline"],
        token_held=p["token_held"],
    )
    return generation.pk, hold.pk


def report_target(*, public_id: str, gateway_id: int) -> tuple | None:
    return (
        Generation.objects.filter(public_id=public_id, gateway_id=gateway_id)
        .values_list("pk", "estimated_cost", "price_snapshot", "rate")
        .first()
    )


def report(**p) -> int | None:
    if not Generation.objects.filter(pk=p["generation_id"], state__in=["held", "expired"]).update(
        input_tokens=p["input_tokens"], output_tokens=p["output_tokens"], cached_tokens=p["cached_tokens"],
        units=p["units"], outcome=p["outcome"], error=p["error"], over_estimate=p["over_estimate"], state="reported",
        charge_basis=p["basis"],
        reported_at=p["now"],
    ):
        return None
    return p["generation_id"]


def settle_lock(generation_id: int) -> SettleRow | None:
    g = Generation.objects.select_for_update().select_related("hold").filter(pk=generation_id).first()
    if g is None:
        return None
    return SettleRow(
        generation_id=g.pk, state=g.state, hold_id=g.hold_id, hold_open=g.expired_at is None,
        account_id=g.hold.account_id, token_id=g.token_id, estimate=g.estimated_cost, outcome=g.outcome,
        snapshot=g.price_snapshot, rate=g.rate, input_tokens=g.input_tokens, output_tokens=g.output_tokens,
        cached_tokens=g.cached_tokens, units=g.units, est_input=g.est_input_tokens, est_output=g.est_output_tokens,
        est_units=g.est_units, basis=g.charge_basis, lease_id=g.hold.lease_id,
        in_lease=g.hold.in_lease, token_held=g.token_held,
    )


def generations_close(closes: list[GenerationClose], *, now) -> None:
    for c in sorted(closes, key=lambda c: c.token_id):
        token = ApiToken.objects.select_for_update().only("budget_period").get(pk=c.token_id)
        start = period_start(period=token.budget_period, now=now)
        ApiToken.objects.filter(pk=c.token_id).update(
            held=F("held") - c.lift, used=F("used") + c.cost, last_used_at=now,
            # sql.BUDGET_SETTLE_SET: the cost counts into the current period, rolled over when a new one began
            period_used=Case(When(period_start__gte=start, then=F("period_used") + c.cost), default=Value(c.cost)),
            period_start=Case(When(period_start__gt=start, then=F("period_start")), default=Value(start)),
        )
    for c in closes:
        Generation.objects.filter(pk=c.generation_id).update(
            state=c.state, final_cost=c.cost, charge_basis=c.basis, closed_at=now
        )


def usage_days_add(generation_ids: list[int]) -> None:
    """The daily rollup's upsert (sql.usage_days_add), row by row through the ORM."""
    for row in usage_day_totals(Generation.objects.filter(pk__in=generation_ids)):
        key = {"user_id": row["user_id"], "day": row["day"], "model_id": row["model_id"]}
        existing = UsageDay.objects.select_for_update().filter(**key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    UsageDay.objects.create(**row)
                continue
            except IntegrityError:  # created meanwhile by another settlement
                existing = UsageDay.objects.select_for_update().get(**key)
        existing.cost += row["cost"]
        existing.requests += row["requests"]
        firsts = [v for v in (existing.first_entry_id, row["first_entry_id"]) if v is not None]
        lasts = [v for v in (existing.last_entry_id, row["last_entry_id"]) if v is not None]
        existing.first_entry_id = min(firsts) if firsts else None
        existing.last_entry_id = max(lasts) if lasts else None
        existing.save(update_fields=["cost", "requests", "first_entry_id", "last_entry_id"])


def usage_day_totals(generations) -> list[dict]:
    """Settled generations' cost, count and the ids of their settlement entries on the user's account, per
    (user, UTC day of the settlement posting, model), in key order."""
    totals: dict[tuple, dict] = {}
    rows = generations.filter(state=Generation.State.SETTLED).values_list(
        "user_id", "model_id", "final_cost", "closed_at", "hold__account_id", "hold__settlement_id",
        "hold__settlement__created_at",
    )
    for user_id, model_id, cost, closed_at, account_id, txn_id, posted_at in rows:
        day = (posted_at or closed_at).astimezone(dt.UTC).date()
        entry_id = (
            Entry.objects.filter(transaction_id=txn_id, account_id=account_id).values_list("pk", flat=True).first()
            if txn_id else None
        )
        row = totals.setdefault((user_id, day, model_id), {
            "user_id": user_id, "day": day, "model_id": model_id, "cost": 0, "requests": 0,
            "first_entry_id": None, "last_entry_id": None,
        })
        row["cost"] += cost
        row["requests"] += 1
        if entry_id is not None:
            row["first_entry_id"] = min(entry_id, row["first_entry_id"] or entry_id)
            row["last_entry_id"] = max(entry_id, row["last_entry_id"] or entry_id)
    return [totals[key] for key in sorted(totals)]

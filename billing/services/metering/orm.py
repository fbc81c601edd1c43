"""The metering hot path's operations written with the ORM, for databases other than PostgreSQL (the
SQLite quickstart of `make run`). Same functions and results as billing/services/metering/sql.py; the test suite runs
the metering scenarios through both on PostgreSQL so they cannot drift apart."""

from __future__ import annotations

from django.db.models import F, Q

from billing.models import ApiToken, Generation, ModelPrice, TierModelRate
from billing.services.metering.sql import PRICE_COLUMNS, GenerationClose, Lookup, SettleRow
from wallet.models import Account, Hold


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
        price={c: getattr(price, c) for c in PRICE_COLUMNS} if price else {},
    )


def account_hold(*, account_id: int, amount: int) -> int | None:
    rows = Account.objects.filter(pk=account_id, kind=Account.Kind.MAIN, balance__gte=F("held") + amount)
    if not rows.update(held=F("held") + amount):
        return None
    account = Account.objects.only("balance", "held").get(pk=account_id)
    return account.balance - account.held


def token_hold_and_open(**p) -> tuple[int, int] | None:
    quota_ok = Q(quota__isnull=True) | Q(quota__gte=F("used") + F("held") + p["est"])
    if not ApiToken.objects.filter(quota_ok, pk=p["token_id"]).update(held=F("held") + p["est"], last_used_at=p["now"]):
        return None
    hold = Hold.objects.create(account_id=p["account_id"], lease_id=p.get("lease_id"), amount=p["est"], expires_at=p["deadline"])
    generation = Generation.objects.create(
        public_id=p["public_id"], user_id=p["user_id"], token_id=p["token_id"], gateway_id=p["gateway_id"],
        request_id=p["request_id"], hold=hold, model_id=p["model_id"], group_name=p["group_name"], endpoint=p["endpoint"],
        client_ip=p["client_ip"], est_input_tokens=p["est_input"], est_output_tokens=p["est_output"], est_units=p["est_units"],
        rate=p["rate"], price_snapshot=p["snapshot"], estimated_cost=p["est"], deadline=p["deadline"],
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
    )


def generations_close(closes: list[GenerationClose], *, now) -> None:
    for c in sorted(closes, key=lambda c: c.token_id):
        ApiToken.objects.filter(pk=c.token_id).update(held=F("held") - c.lift, used=F("used") + c.cost)
    for c in closes:
        Generation.objects.filter(pk=c.generation_id).update(
            state=c.state, final_cost=c.cost, charge_basis=c.basis, closed_at=now
        )

"""Holds placed and closed through the metering path production runs (hold, usage report, the worker's
batch settlement, the sweeper), for tests of the wallet's balances that need a hold of an exact amount.

The model is priced per unit at UNIT_PRICE nanos and its group bills at rate 1, so a hold of `amount`
nanos is `amount / UNIT_PRICE` units and a usage report of `cost / UNIT_PRICE` units charges `cost`.
Amounts below METERING_MIN_HOLD_USD are held at that minimum unless a test sets it to 0.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from billing.models import BillingTier, Generation, ModelPrice, TokenGroup
from billing.services.metering import generations_settle_batch, metering_hold, metering_report, metering_sweep
from billing.services.metering.pricing import Usage
from billing.services.tokens import gateway_key_create, token_create

UNIT_PRICE = 10_000
MODEL = "ledger-test-units"


def _units(nanos: int) -> Decimal:
    return Decimal(nanos) / UNIT_PRICE


def _gateway_and_group():
    tier, _ = BillingTier.objects.get_or_create(name="ledger-test", defaults={"rate": Decimal(1)})
    group, _ = TokenGroup.objects.get_or_create(name="ledger-test", defaults={"tier": tier, "is_public": True})
    ModelPrice.objects.get_or_create(
        name=MODEL, defaults={"billing_type": "per_unit", "unit": "task", "unit_price": UNIT_PRICE}
    )
    gateway, raw = gateway_key_create(name=f"ledger-test-{timezone.now().timestamp()}")
    gateway.raw_key = raw
    return gateway, group


def meter_ready(user):
    """The gateway and the user's API token the helpers use (created on first use; call it before a race)."""
    if not hasattr(user, "_meter"):
        gateway, group = _gateway_and_group()
        _, raw = token_create(user=user, name="ledger-test", group=group)
        user._meter = (gateway, raw)
    return user._meter


def meter_hold(user, amount: int) -> Generation:
    """Freeze `amount` nanos on the user's main account: a gateway's hold with the user's API token."""
    gateway, raw = meter_ready(user)
    generation = metering_hold(gateway=gateway, token_key=raw, model_name=MODEL, endpoint="/v1/test", units=_units(amount))
    generation.gateway = gateway
    return generation


def meter_settle(generation: Generation, cost: int) -> None:
    """Report success with usage costing `cost` nanos, then run the worker's batch settlement."""
    metering_report(gateway=generation.gateway, public_id=generation.public_id, outcome="succeeded",
                    usage=Usage(units=_units(cost)))
    generations_settle_batch()


def meter_release(generation: Generation) -> None:
    """Report failure (no charge), then run the worker's batch settlement: the hold is released."""
    metering_report(gateway=generation.gateway, public_id=generation.public_id, outcome="failed")
    generations_settle_batch()


def meter_expire(generation: Generation) -> None:
    """Let the hold's deadline pass and run the sweeper: the hold expires with no charge."""
    Generation.objects.filter(pk=generation.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    metering_sweep()

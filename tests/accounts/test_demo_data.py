"""`make run` loads demo data on every start; it creates what is missing and never undoes an operator's edit."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import BillingTier, ModelPrice, TokenGroup
from referrals.models import RewardRule
from synstar.money import usd
from wallet.models import BonusRule, PaymentMethod

pytestmark = pytest.mark.django_db


def test_a_restart_keeps_every_admin_edit():
    call_command("load_demo")
    ModelPrice.objects.filter(name="gpt-4o").update(input_per_million=usd("1.99"), is_active=False)
    BillingTier.objects.filter(name="discount-0.3").update(rate=Decimal("0.5"))
    TokenGroup.objects.filter(name="default").update(description="edited")
    BonusRule.objects.filter(match="exact", amount=usd("100")).update(bonus_fixed=usd("5"))
    PaymentMethod.objects.filter(code="stripe_alipay").update(is_enabled=False, name="Alipay (edited)")
    RewardRule.objects.update(commission_percent=7)
    counts = [m.objects.count() for m in (ModelPrice, BillingTier, TokenGroup, BonusRule, PaymentMethod, RewardRule)]

    call_command("load_demo")  # the next `make run`

    price = ModelPrice.objects.get(name="gpt-4o")
    assert (price.input_per_million, price.is_active) == (usd("1.99"), False)
    assert BillingTier.objects.get(name="discount-0.3").rate == Decimal("0.5")
    assert TokenGroup.objects.get(name="default").description == "edited"
    assert BonusRule.objects.get(match="exact", amount=usd("100")).bonus_fixed == usd("5")
    method = PaymentMethod.objects.get(code="stripe_alipay")
    assert (method.is_enabled, method.name) == (False, "Alipay (edited)")
    assert RewardRule.objects.get().commission_percent == 7
    assert [m.objects.count() for m in (ModelPrice, BillingTier, TokenGroup, BonusRule, PaymentMethod, RewardRule)] == counts


def test_a_deleted_demo_row_stays_deleted():
    call_command("load_demo")
    ModelPrice.objects.filter(name="gpt-4o-mini").delete()
    PaymentMethod.objects.filter(code="stripe_wechat_pay").delete()
    call_command("load_demo")
    assert not ModelPrice.objects.filter(name="gpt-4o-mini").exists()
    assert not PaymentMethod.objects.filter(code="stripe_wechat_pay").exists()


def test_an_empty_database_gets_the_demo_catalog():
    call_command("load_demo")
    assert ModelPrice.objects.count() >= 10 and BonusRule.objects.count() == 4 and PaymentMethod.objects.count() == 4

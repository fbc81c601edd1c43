"""Demo top-up configuration: the default bonus rules and payment methods."""

from decimal import Decimal

from synstar.money import usd
from wallet.models import BonusRule, PaymentMethod

BONUS_RULES = [
    ("exact", "100", "3", "0"),
    ("exact", "500", "20", "0"),
    ("exact", "1000", "100", "0"),
    ("above", "1000", "0", "12"),
]

METHODS = [
    # code, name, provider, provider method, countries (empty: all)
    ("stripe_card", "Card (Stripe)", "stripe", "card", []),
    ("stripe_alipay", "Alipay", "stripe", "alipay", ["CN"]),
    ("stripe_wechat_pay", "WeChat Pay", "stripe", "wechat_pay", ["CN"]),
    ("airwallex_card", "Card (Airwallex)", "airwallex", "card", []),
]


def topup_config_load() -> None:
    """Demo data once: each table is filled only while it is empty, so a row an operator edited or deleted in
    admin stays as they left it."""
    for match, amount, fixed, percent in BONUS_RULES if not BonusRule.objects.exists() else []:
        BonusRule.objects.get_or_create(
            match=match, amount=usd(amount), defaults={"bonus_fixed": usd(fixed), "bonus_percent": Decimal(percent)}
        )
    for order, (code, name, provider, provider_method, countries) in enumerate(METHODS if not PaymentMethod.objects.exists() else []):
        PaymentMethod.objects.get_or_create(
            code=code,
            defaults={"name": name, "provider": provider, "provider_method": provider_method, "countries": countries, "sort_order": order},
        )

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
    for match, amount, fixed, percent in BONUS_RULES:
        BonusRule.objects.update_or_create(
            match=match, amount=usd(amount), defaults={"bonus_fixed": usd(fixed), "bonus_percent": Decimal(percent)}
        )
    for order, (code, name, provider, provider_method, countries) in enumerate(METHODS):
        PaymentMethod.objects.update_or_create(
            code=code,
            defaults={"name": name, "provider": provider, "provider_method": provider_method, "countries": countries, "sort_order": order},
        )

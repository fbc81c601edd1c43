"""Auto top-up: a saved card (Stripe, set up through Checkout in `setup` mode) and the rule "when the
available balance falls below X, top up Y", with a daily cap. The charges themselves are top-up orders
(`TopUpOrder.Source.AUTO`); at most one of them is open per user (a partial unique index on the orders)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from wallet.models.topups import TopUpOrder


class AutoTopUp(models.Model):
    """One row per user who ever set up auto top-up. Changed only by wallet/services/autotopup.py; its row
    lock serialises the triggers of one user (taken alone, never with an account or order lock held)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="autotopup")
    enabled = models.BooleanField(default=False)
    threshold = models.BigIntegerField(default=0, help_text="nanos: top up when available falls below this")
    amount = models.BigIntegerField(default=0, help_text="nanos: the top-up amount")
    daily_cap = models.BigIntegerField(default=0, help_text="nanos: the most auto top-ups may charge per UTC day")
    # The saved card (Stripe ids; no card number ever reaches us).
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    payment_method_id = models.CharField(max_length=255, blank=True, default="")
    card_brand = models.CharField(max_length=32, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    # The setup Checkout Session last started, and the SetupIntent its completion reported.
    setup_checkout_id = models.CharField(max_length=255, blank=True, default="")
    setup_intent_id = models.CharField(max_length=255, blank=True, default="")
    disabled_reason = models.CharField(max_length=255, blank=True, default="", help_text="Shown to the user: our words")
    disabled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("auto top-up setting")
        verbose_name_plural = _("auto top-up settings")
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gte=0, amount__gte=0, daily_cap__gte=0), name="wallet_autotopup_nonnegative"),
            # Enabled only with a card and a usable rule.
            models.CheckConstraint(
                condition=Q(enabled=False) | (~Q(payment_method_id="") & Q(threshold__gt=0, amount__gt=0, daily_cap__gte=models.F("amount"))),
                name="wallet_autotopup_enabled_complete",
            ),
        ]
        indexes = [models.Index(fields=["stripe_customer_id"], name="wallet_autotopup_customer")]

    def __str__(self) -> str:
        return f"Auto top-up of {self.user}"

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method_id)


class AutoTopUpAttempt(TopUpOrder):
    """The auto top-up orders, for their own admin list."""

    class Meta:
        proxy = True
        verbose_name = _("auto top-up attempt")
        verbose_name_plural = _("auto top-up attempts")

"""The daily usage rollup: spend and settled requests per user, UTC day and model, kept by settlement.

Settlement adds each batch's totals in the same database transaction as the charges (one upsert per
batch), so the dashboard's chart and the balance history read a few rows per day whatever the number
of usage records. `python manage.py rollup_rebuild` recomputes it from the settled generations.
The day is the UTC day of the settlement posting (the ledger's day for the charge).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.catalog import ModelPrice


class UsageDay(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    day = models.DateField(help_text="UTC day of the settlement")
    model = models.ForeignKey(ModelPrice, on_delete=models.PROTECT, related_name="+")
    cost = models.BigIntegerField(default=0, help_text="nanos charged")
    requests = models.BigIntegerField(default=0, help_text="settled requests")
    # The lowest and highest id of the user's settlement entries of the day: the balance history's per-request
    # view seeks a date range between them instead of walking the entry index from the newest entry.
    first_entry_id = models.BigIntegerField(null=True, blank=True)
    last_entry_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day", "model"], name="billing_usageday_user_day_model"),
            models.CheckConstraint(condition=Q(cost__gte=0, requests__gte=0), name="billing_usageday_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.model_id}"

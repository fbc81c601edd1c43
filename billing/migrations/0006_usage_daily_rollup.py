"""The daily usage rollup, filled from the generations already settled (settlement keeps it from now on;
`manage.py rollup_rebuild` recomputes it)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


BACKFILL_SQL = """
INSERT INTO billing_usageday (user_id, day, model_id, cost, requests, first_entry_id, last_entry_id)
SELECT g.user_id, (COALESCE(t.created_at, g.closed_at) AT TIME ZONE 'UTC')::date, g.model_id, SUM(g.final_cost), COUNT(*),
       MIN(e.id), MAX(e.id)
  FROM billing_generation g
  JOIN wallet_hold h ON h.id = g.hold_id
  LEFT JOIN wallet_transaction t ON t.id = h.settlement_id
  LEFT JOIN wallet_entry e ON e.transaction_id = t.id AND e.account_id + 0 = h.account_id
 WHERE g.state = 'settled'
 GROUP BY 1, 2, 3
"""


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKFILL_SQL)
        return
    import datetime as dt

    Generation = apps.get_model("billing", "Generation")
    Entry = apps.get_model("wallet", "Entry")
    UsageDay = apps.get_model("billing", "UsageDay")
    totals: dict = {}
    for g in Generation.objects.filter(state="settled").select_related("hold__settlement"):
        txn = g.hold.settlement
        day = (txn.created_at if txn else g.closed_at).astimezone(dt.UTC).date()
        entry_id = Entry.objects.filter(transaction=txn, account_id=g.hold.account_id).values_list("pk", flat=True).first() if txn else None
        row = totals.setdefault((g.user_id, day, g.model_id), {"cost": 0, "requests": 0, "first_entry_id": None, "last_entry_id": None})
        row["cost"] += g.final_cost
        row["requests"] += 1
        if entry_id is not None:
            row["first_entry_id"] = min(entry_id, row["first_entry_id"] or entry_id)
            row["last_entry_id"] = max(entry_id, row["last_entry_id"] or entry_id)
    UsageDay.objects.bulk_create(
        [UsageDay(user_id=u, day=d, model_id=m, **row) for (u, d, m), row in totals.items()], batch_size=1000
    )


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_token_budgets_rpm_alerts'),
        ('wallet', '0007_order_refund_seen'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='UsageDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField(help_text='UTC day of the settlement')),
                ('cost', models.BigIntegerField(default=0, help_text='nanos charged')),
                ('requests', models.BigIntegerField(default=0, help_text='settled requests')),
                ('first_entry_id', models.BigIntegerField(blank=True, null=True)),
                ('last_entry_id', models.BigIntegerField(blank=True, null=True)),
                ('model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.modelprice')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('user', 'day', 'model'), name='billing_usageday_user_day_model'), models.CheckConstraint(condition=models.Q(('cost__gte', 0), ('requests__gte', 0)), name='billing_usageday_nonnegative')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]

"""The daily usage rollup, filled from the generations already settled (settlement keeps it from now on;
`manage.py rollup_rebuild` recomputes it)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


BACKFILL_SQL = """
INSERT INTO billing_usageday (user_id, day, model_id, cost, requests)
SELECT g.user_id, (COALESCE(t.created_at, g.closed_at) AT TIME ZONE 'UTC')::date, g.model_id, SUM(g.final_cost), COUNT(*)
  FROM billing_generation g
  JOIN wallet_hold h ON h.id = g.hold_id
  LEFT JOIN wallet_transaction t ON t.id = h.settlement_id
 WHERE g.state = 'settled'
 GROUP BY 1, 2, 3
"""


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKFILL_SQL)
        return
    import datetime as dt

    from django.db.models import Count, Sum
    from django.db.models.functions import Coalesce, TruncDate

    Generation = apps.get_model("billing", "Generation")
    UsageDay = apps.get_model("billing", "UsageDay")
    rows = (
        Generation.objects.filter(state="settled")
        .annotate(day=TruncDate(Coalesce("hold__settlement__created_at", "closed_at"), tzinfo=dt.UTC))
        .values("user_id", "day", "model_id")
        .annotate(cost=Sum("final_cost"), requests=Count("id"))
        .order_by()
    )
    UsageDay.objects.bulk_create([UsageDay(**row) for row in rows], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_relay_channels'),
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
                ('model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.modelprice')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('user', 'day', 'model'), name='billing_usageday_user_day_model'), models.CheckConstraint(condition=models.Q(('cost__gte', 0), ('requests__gte', 0)), name='billing_usageday_nonnegative')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]

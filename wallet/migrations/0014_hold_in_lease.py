from django.db import migrations, models

# Settlement stops locking leases: a hold records whether it is counted in its lease (`in_lease`) and what
# its settlement spent of it (`lease_spent`); the lease's holder folds closed holds in later. Holds open on
# an open lease when this runs are in it (leases were off by default, so there are usually none).
MARK_IN_LEASE = """
UPDATE wallet_hold h SET in_lease = true
  FROM wallet_lease l
 WHERE h.lease_id = l.id AND l.status = 'open' AND h.status = 'open'
"""


class Migration(migrations.Migration):

    dependencies = [
        ('wallet', '0013_leases'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='hold', name='wallet_hold_open_by_lease'),
        migrations.AddField(
            model_name='hold',
            name='in_lease',
            field=models.BooleanField(db_default=False, default=False, help_text="counted in its lease's used (not folded yet)"),
        ),
        migrations.AddField(
            model_name='hold',
            name='lease_spent',
            field=models.BigIntegerField(db_default=0, default=0, help_text="what settling it took from its lease (up to the hold): the lease's size falls by it when folded"),
        ),
        migrations.RunSQL(MARK_IN_LEASE, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='hold',
            index=models.Index(condition=models.Q(('in_lease', True)), fields=['lease'], name='wallet_hold_in_lease'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('lease_spent__gte', 0), ('lease_spent__lte', models.F('amount'))), name='wallet_hold_lease_spent_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='hold',
            constraint=models.CheckConstraint(condition=models.Q(('in_lease', False), ('lease__isnull', False), _connector='OR'), name='wallet_hold_in_lease_has_lease'),
        ),
    ]

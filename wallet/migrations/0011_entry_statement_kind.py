"""Entries of postings other than usage settlement carry their posting's kind and a partial index, so the
balance history lists an account's postings without reading its (many) usage charges. Existing entries
are filled in once here (the append-only trigger is set aside for this one UPDATE)."""

from django.db import migrations, models

BACKFILL_SQL = """
ALTER TABLE wallet_entry DISABLE TRIGGER wallet_entry_append_only;
UPDATE wallet_entry e SET statement_kind = t.kind
  FROM wallet_transaction t
 WHERE t.id = e.transaction_id AND t.kind <> 'settlement';
ALTER TABLE wallet_entry ENABLE TRIGGER wallet_entry_append_only;
"""


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKFILL_SQL)
        return
    Entry = apps.get_model("wallet", "Entry")
    for entry in Entry.objects.exclude(transaction__kind="settlement").select_related("transaction").iterator():
        Entry.objects.filter(pk=entry.pk).update(statement_kind=entry.transaction.kind)


class Migration(migrations.Migration):

    dependencies = [
        ('wallet', '0010_alert_settings_and_webhook_deliveries'),
    ]

    operations = [
        migrations.AddField(
            model_name='entry',
            name='statement_kind',
            field=models.CharField(blank=True, editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='entry',
            index=models.Index(condition=models.Q(('statement_kind__isnull', False)), fields=['account', '-id'], name='wallet_entry_statement'),
        ),
    ]

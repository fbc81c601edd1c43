from django.db import migrations, models


class Migration(migrations.Migration):
    """A manual adjustment's reason in words for the user (shown in their history), apart from the internal note.

    db_default: the settlement's raw INSERTs into wallet_transaction do not name the column."""

    dependencies = [("wallet", "0008_invoices_and_refund_requests")]

    operations = [
        migrations.AlterField(
            model_name="transaction",
            name="reason",
            field=models.TextField(blank=True, default="", help_text="Why (required for manual adjustments); operators only"),
        ),
        migrations.AddField(
            model_name="transaction",
            name="user_reason",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=255,
                help_text="Why, in words for the user: shown in their balance history (manual adjustments)",
            ),
        ),
    ]

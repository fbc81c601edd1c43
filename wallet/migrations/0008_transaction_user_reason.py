"""A reason for the user on a posting (a manual adjustment's), shown in their balance history; the
internal `reason` and the operator stay in admin."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('wallet', '0007_order_refund_seen'),
    ]

    operations = [
        migrations.AddField(
            model_name='transaction',
            name='user_reason',
            field=models.TextField(blank=True, default='', db_default='', help_text='Why, in words for the user: shown in their balance history (the reason above is internal)'),
        ),
    ]

"""Writes: the daily usage rollup's rebuild (settlement keeps it up to date; see metering `usage_days_add`)."""

from __future__ import annotations

from django.db import connection, transaction

from billing.models import Generation, UsageDay
from billing.services.metering import orm, sql

REBUILD_SQL = f"""
INSERT INTO billing_usageday (user_id, day, model_id, cost, requests, first_entry_id, last_entry_id)
SELECT g.user_id, {sql.USAGE_DAY_SQL}, g.model_id, SUM(g.final_cost), COUNT(*), MIN(e.id), MAX(e.id)
  FROM billing_generation g
  JOIN wallet_hold h ON h.id = g.hold_id
  LEFT JOIN wallet_transaction t ON t.id = h.settlement_id
  LEFT JOIN wallet_entry e ON e.transaction_id = t.id AND e.account_id + 0 = h.account_id
 WHERE g.state = 'settled'
 GROUP BY 1, 2, 3
"""


@transaction.atomic
def usage_days_rebuild() -> int:
    """Recompute the whole rollup from the settled generations; returns the number of rows.

    On PostgreSQL the table is locked against settlement's upserts first (EXCLUSIVE: reads go on), so no
    settlement is counted twice or missed: settlements wait until the rebuild commits.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5min'")
            cursor.execute("LOCK TABLE billing_usageday IN EXCLUSIVE MODE")
            cursor.execute("DELETE FROM billing_usageday")
            cursor.execute(REBUILD_SQL)
            return cursor.rowcount
    UsageDay.objects.all().delete()
    rows = [UsageDay(**row) for row in orm.usage_day_totals(Generation.objects.all())]
    UsageDay.objects.bulk_create(rows, batch_size=1000)
    return len(rows)

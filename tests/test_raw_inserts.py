"""Raw SQL INSERTs (the metering hot path, the ledger's settlement, the benchmarks' seeding) name their
columns: a NOT NULL column added later without a database default (`db_default`) would make every one of
them fail. This test reads every raw INSERT in the code and checks it names each such column of its
table in the migrated database."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db

SOURCES = ["billing", "wallet", "referrals", "synstar", "bench"]
INSERT = re.compile(r"INSERT INTO\s+\"?(\w+)\"?\s*\(([^)]*)\)", re.IGNORECASE)


def _raw_inserts():
    root = Path(settings.BASE_DIR)
    for folder in SOURCES:
        for path in (root / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for match in INSERT.finditer(path.read_text()):
                columns = {c.strip().strip('"') for c in match.group(2).split(",")}
                yield path.relative_to(root), match.group(1), columns


def _required(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND is_nullable = 'NO'"
            " AND column_default IS NULL AND is_identity = 'NO'",
            [table],
        )
        return {row[0] for row in cursor.fetchall()} - {"id"}


def test_every_raw_insert_names_every_column_that_has_no_database_default():
    inserts = list(_raw_inserts())
    tables = {table for _, table, _ in inserts}
    assert {"wallet_hold", "billing_generation", "wallet_transaction", "wallet_entry"} <= tables  # the scan finds them
    missing = [
        f"{path}: INSERT INTO {table} lacks {sorted(_required(table) - columns)}"
        for path, table, columns in inserts
        if _required(table) - columns
    ]
    assert missing == [], "give the new column a db_default, or name it in these INSERTs"

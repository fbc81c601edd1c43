"""PostgreSQL backstops behind the services: entries and transactions are append-only, and a database
transaction cannot commit a ledger transaction whose entries do not sum to zero (or has fewer than two).
SQLite (the quickstart) relies on the services and check_ledger alone.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION wallet_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER wallet_entry_append_only BEFORE UPDATE OR DELETE ON wallet_entry
    FOR EACH ROW EXECUTE FUNCTION wallet_ledger_append_only();
CREATE TRIGGER wallet_transaction_append_only BEFORE UPDATE OR DELETE ON wallet_transaction
    FOR EACH ROW EXECUTE FUNCTION wallet_ledger_append_only();

CREATE FUNCTION wallet_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
    n integer;
BEGIN
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, n
      FROM wallet_entry WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % entries summing to %',
            NEW.transaction_id, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER wallet_entry_balanced AFTER INSERT ON wallet_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION wallet_transaction_balanced();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS wallet_entry_balanced ON wallet_entry;
DROP FUNCTION IF EXISTS wallet_transaction_balanced();
DROP TRIGGER IF EXISTS wallet_entry_append_only ON wallet_entry;
DROP TRIGGER IF EXISTS wallet_transaction_append_only ON wallet_transaction;
DROP FUNCTION IF EXISTS wallet_ledger_append_only();
"""


def _run(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)  # no params: '%' in plpgsql format strings stays literal


def forward(apps, schema_editor):
    _run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("wallet", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]

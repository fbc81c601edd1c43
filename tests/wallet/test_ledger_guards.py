"""The database refuses what the services never do: edited entries, unbalanced transactions."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from synstar.money import usd
from tests.factories import make_user
from tests.metering import meter_hold
from wallet.models import Account, Entry, Hold, SystemAccount, Transaction
from wallet.services.ledger import main_account, system_account_id


@pytest.mark.django_db(transaction=True)
def test_entries_and_transactions_are_append_only():
    make_user()
    entry = Entry.objects.first()
    with pytest.raises(IntegrityError, match="append-only"):
        Entry.objects.filter(pk=entry.pk).update(amount=123)
    with pytest.raises(IntegrityError, match="append-only"):
        Entry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(IntegrityError, match="append-only"):
        Transaction.objects.filter(pk=entry.transaction_id).update(description="edited")


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_transaction_cannot_commit():
    user = make_user()
    account = main_account(user=user)
    with pytest.raises(IntegrityError, match="does not balance"):
        with transaction.atomic():
            txn = Transaction.objects.create(kind="grant", idempotency_key="bad")
            Entry.objects.create(transaction=txn, account=account, amount=usd("1"))
            Entry.objects.create(transaction=txn, account_id=system_account_id(SystemAccount.PROMOTIONS), amount=-1)
    assert not Transaction.objects.filter(idempotency_key="bad").exists()


@pytest.mark.django_db(transaction=True)
def test_held_can_never_go_negative():
    user = make_user()
    with pytest.raises(IntegrityError):
        Account.objects.filter(pk=main_account(user=user).pk).update(held=-1)


@pytest.mark.django_db
def test_check_ledger_passes_on_a_sound_ledger(capsys):
    user = make_user()
    meter_hold(user, usd("0.25"))
    call_command("check_ledger")
    assert "ledger OK" in capsys.readouterr().out


def _broken(capsys) -> str:
    with pytest.raises(CommandError):
        call_command("check_ledger")
    return capsys.readouterr().err


@pytest.mark.django_db
@pytest.mark.ledger_broken
def test_check_ledger_reports_a_cached_balance_that_disagrees_with_entries(capsys):
    user = make_user()
    Account.objects.filter(pk=main_account(user=user).pk).update(balance=usd("9"))
    assert "cached balance 9000000000 != sum of entries 500000000" in _broken(capsys)


@pytest.mark.django_db
@pytest.mark.ledger_broken
def test_check_ledger_reports_held_that_disagrees_with_open_holds(capsys):
    user = make_user()
    hold = meter_hold(user, usd("0.25"))
    Hold.objects.filter(pk=hold.hold_id).update(status="released")
    assert "held 250000000 != sum of open holds 0" in _broken(capsys)


def _without_triggers():
    """Write as a broken deployment might: bypass the ledger triggers for this transaction only."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")


@pytest.mark.django_db
@pytest.mark.ledger_broken
def test_check_ledger_reports_an_unbalanced_transaction(capsys):
    user = make_user()
    _without_triggers()
    txn = Transaction.objects.create(kind="grant", idempotency_key="lopsided")
    Entry.objects.create(transaction=txn, account=main_account(user=user), amount=5)
    Account.objects.filter(pk=main_account(user=user).pk).update(balance=usd("0.50") + 5)
    err = _broken(capsys)
    assert f"transaction {txn.pk} does not balance: 1 entries summing to 5" in err


@pytest.mark.django_db
@pytest.mark.ledger_broken
def test_check_ledger_reports_debt_not_caused_by_settlement(capsys):
    user = make_user()
    account = main_account(user=user)
    txn = Transaction.objects.create(kind="debit", idempotency_key="overdraft")
    Entry.objects.create(transaction=txn, account=account, amount=-usd("2"))
    Entry.objects.create(transaction=txn, account_id=system_account_id(SystemAccount.REVENUE), amount=usd("2"))
    Account.objects.filter(pk=account.pk).update(balance=-usd("1.50"))
    assert "went below zero (-1500000000) through a debit posting" in _broken(capsys)


@pytest.mark.django_db(transaction=True)
@pytest.mark.ledger_broken
def test_check_ledger_command_exits_non_zero_and_says_what_is_wrong():
    """The command as an operator runs it, in its own process, against committed data."""
    user = make_user()
    db = settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    command = [sys.executable, "manage.py", "check_ledger"]

    sound = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
    assert (sound.returncode, sound.stdout.strip()) == (0, "ledger OK")

    Account.objects.filter(pk=main_account(user=user).pk).update(balance=usd("3"))
    broken = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
    assert broken.returncode == 1
    assert f"account user:{user.pk}:main: cached balance 3000000000 != sum of entries 500000000" in broken.stderr

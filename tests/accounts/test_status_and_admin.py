import pytest
from django.urls import reverse

from synstar.accounts.models import User, UserStatusChange
from synstar.accounts.services import user_status_set
from synstar.errors import InvalidRequest
from synstar.money import usd
from wallet.models import Transaction
from wallet.selectors.ledger import wallet_statistics

pytestmark = pytest.mark.django_db


def test_status_change_records_who_and_why(make_user, admin_user):
    user = make_user()
    user_status_set(user=user, status="under_review", review_reason="payment", note="chargeback on order 12", actor=admin_user)
    user.refresh_from_db()
    assert (user.status, user.review_reason, user.status_note) == ("under_review", "payment", "chargeback on order 12")
    change = UserStatusChange.objects.get(user=user)
    assert (change.old_status, change.new_status, change.actor) == ("active", "under_review", admin_user)


@pytest.mark.parametrize(
    ("status", "reason", "note", "code"),
    [
        ("under_review", "", "why", "reason_required"),
        ("under_review", "bogus", "why", "reason_required"),
        ("suspended", "", "  ", "note_required"),
        ("deleted", "", "why", "invalid_status"),
    ],
)
def test_bad_status_changes_are_refused_and_change_nothing(make_user, admin_user, status, reason, note, code):
    user = make_user()
    with pytest.raises(InvalidRequest) as info:
        user_status_set(user=user, status=status, review_reason=reason, note=note, actor=admin_user)
    assert info.value.code == code
    user.refresh_from_db()
    assert user.status == "active" and not UserStatusChange.objects.exists()


def test_console_shows_the_review_banner(client, make_user, admin_user):
    user = make_user()
    user_status_set(user=user, status="under_review", review_reason="risk", note="velocity", actor=admin_user)
    client.force_login(user)
    page = client.get(reverse("console:dashboard")).content.decode()
    assert "under risk review" in page


def test_admin_user_list_shows_balances(client, make_user, admin_user):
    make_user(email="rich@example.com", balance="1234.00")
    client.force_login(admin_user)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "rich@example.com" in page and "$1,234.50" in page


def _change_form(user, **overrides):
    data = {
        "email": user.email,
        "country": user.country.code,
        "status": user.status,
        "review_reason": user.review_reason,
        "status_change_note": "",
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_admin_status_change_requires_a_note_and_records_it(client, make_user, admin_user):
    user = make_user()
    client.force_login(admin_user)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    refused = client.post(url, _change_form(user, status="suspended"))
    assert refused.status_code == 200 and "Say why the status changes." in refused.content.decode()
    assert User.objects.get(pk=user.pk).status == "active"

    done = client.post(url, _change_form(user, status="suspended", status_change_note="fraud ring"))
    assert done.status_code == 302
    user.refresh_from_db()
    assert (user.status, user.status_note) == ("suspended", "fraud ring")
    assert UserStatusChange.objects.get(user=user).actor == admin_user


def test_admin_adjustment_action_records_actor_and_reason_once(client, make_user, admin_user):
    user = make_user()
    client.force_login(admin_user)
    url = reverse("admin:accounts_user_changelist")
    form = client.post(url, {"action": "adjust_balance_action", "_selected_action": [user.pk]})
    assert form.status_code == 200 and "Apply adjustment" in form.content.decode()
    key = form.context["form"].initial["idempotency_key"]
    submit = {
        "action": "adjust_balance_action",
        "_selected_action": [user.pk],
        "apply": "1",
        "amount": "25.00",
        "reason": "SLA credit for incident 7",
        "idempotency_key": key,
    }
    client.post(url, submit)
    client.post(url, submit)  # a double submit changes nothing twice
    assert wallet_statistics(user=user).balance == usd("25.50")
    txn = Transaction.objects.get(kind="adjustment")
    assert (txn.actor, txn.reason) == (admin_user, "SLA credit for incident 7")


def test_admin_adjustment_with_bad_amount_changes_nothing(client, make_user, admin_user):
    user = make_user()
    client.force_login(admin_user)
    url = reverse("admin:accounts_user_changelist")
    for amount, message in [("abc", "decimal number"), ("-5", "less than"), ("1.0000000001", "9 decimal places")]:
        response = client.post(
            url,
            {"action": "adjust_balance_action", "_selected_action": [user.pk], "apply": "1",
             "amount": amount, "reason": "test", "idempotency_key": f"k-{amount}"},
            follow=True,
        )
        assert message in response.content.decode()
    assert wallet_statistics(user=user).balance == usd("0.50")
    assert not Transaction.objects.filter(kind="adjustment").exists()


def test_ledger_admin_is_read_only(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("admin:wallet_transaction_changelist")).status_code == 200
    assert client.get(reverse("admin:wallet_transaction_add")).status_code == 403
    assert client.get(reverse("admin:wallet_entry_add")).status_code == 403


def test_admin_can_add_a_user_who_gets_ledger_accounts_and_the_grant(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {"email": "new@example.com", "country": "FR", "usable_password": "true",
         "password1": "a long passphrase 42", "password2": "a long passphrase 42"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(email="new@example.com")
    assert wallet_statistics(user=user).balance == usd("0.50")

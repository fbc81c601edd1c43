"""One account-status policy decides who may hold, top up, redeem and transfer; every service and the console
banner follow it."""

import pytest

from synstar.accounts.selectors import HOLD, REDEEM, TOP_UP, TRANSFER, account_policy
from synstar.accounts.services import user_status_set
from tests.factories import make_user

CASES = [
    # status, review reason, active -> (hold, top up, redeem, transfer)
    ("active", "", True, (True, True, True, True)),
    ("under_review", "payment", True, (False, False, True, True)),
    ("under_review", "risk", True, (False, True, True, True)),
    ("under_review", "compliance", True, (False, True, True, True)),
    ("suspended", "", True, (False, False, False, False)),
    ("active", "", False, (False, True, True, True)),
]


@pytest.mark.parametrize(("status", "reason", "active", "allowed"), CASES)
def test_policy_table(status, reason, active, allowed):
    policy = account_policy(status=status, review_reason=reason, is_active=active)
    assert tuple(policy.allows(a) for a in (HOLD, TOP_UP, REDEEM, TRANSFER)) == allowed
    assert bool(policy.banner) == (status != "active")


@pytest.mark.django_db
def test_services_and_pages_follow_the_policy(client, admin_user, settings):
    from synstar.errors import PermissionDenied
    from synstar.money import usd
    from wallet.demo import topup_config_load
    from wallet.services.topups import order_create

    topup_config_load()
    user = make_user()
    user_status_set(user=user, status="under_review", review_reason="payment", note="chargeback", actor=admin_user)
    with pytest.raises(PermissionDenied) as exc:
        order_create(user=user, amount=usd("10"), method_code="stripe_card")
    assert exc.value.code == "account_under_review"
    client.force_login(user)
    page = client.get("/wallet/").content.decode()
    assert "under payment review" in page and 'data-testid="topup-refused"' in page and 'data-testid="checkout"' not in page
    user_status_set(user=user, status="active", note="cleared", actor=admin_user)
    page = client.get("/wallet/").content.decode()
    assert 'data-testid="checkout"' in page and 'data-testid="account-status"' not in page

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from referrals.demo import reward_rule_load
from referrals.models import Referral, ReferralReward, RewardRule
from referrals.selectors import referral_stats
from referrals.services import invite_code_for, referral_record, referral_transfer
from synstar.errors import InsufficientBalance, InvalidRequest
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.models import Transaction
from wallet.selectors.ledger import wallet_statistics
from wallet.services.refunds import order_refund
from wallet.services.topups import order_complete, order_create

SIGNUP = {"password1": "a long passphrase 42", "password2": "a long passphrase 42", "country": "US"}


@pytest.fixture
def rules(db):
    topup_config_load()
    reward_rule_load()  # 10%, +$1 on the first top-up, 365 days, cap $100, min transfer $1


def top_up(user, dollars):
    order = order_create(user=user, amount=usd(dollars), method_code="stripe_card")  # the sandbox takes it
    return order_complete(order_id=order.pk, amount_cents=int(usd(dollars) // 10_000_000), currency="usd")


def invited_pair():
    inviter, invitee = make_user(), make_user()
    referral_record(invitee=invitee, code=invite_code_for(user=inviter).code)
    return inviter, invitee


@pytest.mark.django_db
def test_signing_up_through_the_invite_link_records_the_inviter(client, rules):
    inviter = make_user()
    code = invite_code_for(user=inviter).code
    assert client.get(reverse("invite-landing", args=[code.lower()]))["Location"] == reverse("account_signup")
    client.post(reverse("account_signup"), {"email": "friend@example.com", **SIGNUP})
    referral = Referral.objects.get()
    assert (referral.inviter, referral.invitee.email) == (inviter, "friend@example.com")
    assert referral_stats(user=inviter).invited == 1


@pytest.mark.django_db
def test_no_self_referral_and_one_inviter_per_user(rules):
    user, first, second = make_user(), make_user(), make_user()
    assert referral_record(invitee=user, code=invite_code_for(user=user).code) is None
    referral_record(invitee=user, code=invite_code_for(user=first).code)
    referral_record(invitee=user, code=invite_code_for(user=second).code)
    assert Referral.objects.get(invitee=user).inviter == first
    assert referral_record(invitee=user, code="NOPE1234") is None


@pytest.mark.django_db
def test_rewards_accrue_on_completed_top_ups_base_only(rules):
    inviter, invitee = invited_pair()
    top_up(invitee, "100")  # 10% of $100 base (not the $3 bonus) + $1 first top-up reward
    top_up(invitee, "50")
    stats = referral_stats(user=inviter)
    assert (stats.proceeds, stats.total_revenue, stats.invited) == (usd("16"), usd("16"), 1)
    assert wallet_statistics(user=inviter).balance == usd("0.50")  # proceeds are separate until transferred
    call_command("check_ledger")


@pytest.mark.django_db
def test_cap_and_window(rules):
    RewardRule.objects.update(cap_per_invitee=usd("12"), window_days=30)
    inviter, invitee = invited_pair()
    top_up(invitee, "100")  # $11
    top_up(invitee, "100")  # $10 due, $1 left under the cap
    assert referral_stats(user=inviter).proceeds == usd("12")
    late_inviter, late = invited_pair()
    Referral.objects.filter(invitee=late).update(created_at=Referral.objects.get(invitee=late).created_at - timedelta(days=31))
    top_up(late, "100")
    assert referral_stats(user=late_inviter).proceeds == 0


@pytest.mark.django_db
def test_refund_reverses_the_reward_and_records_the_shortfall(rules, admin_user):
    inviter, invitee = invited_pair()
    order = top_up(invitee, "100")  # inviter earns $11
    referral_transfer(user=inviter, amount=usd("8"), idempotency_key="t1")  # $3 proceeds left
    order_refund(order_id=order.pk, source="admin", key="r1", actor=admin_user)  # the whole $100
    reward = ReferralReward.objects.get()
    assert (reward.reversed_amount, reward.reversal_shortfall) == (usd("3"), usd("8"))
    stats = referral_stats(user=inviter)
    assert (stats.proceeds, stats.total_revenue) == (0, usd("8"))
    call_command("check_ledger")


@pytest.mark.django_db
def test_partial_refund_reverses_proportionally(rules, admin_user):
    inviter, invitee = invited_pair()
    order = top_up(invitee, "200")  # $21
    order_refund(order_id=order.pk, source="admin", key="half", cash=usd("100"), actor=admin_user)
    assert referral_stats(user=inviter).proceeds == usd("10.50")


@pytest.mark.django_db
def test_transfer_rules(rules):
    inviter, invitee = invited_pair()
    top_up(invitee, "20")  # $3
    with pytest.raises(InvalidRequest, match="minimum transfer is \\$1.00"):
        referral_transfer(user=inviter, amount=usd("0.50"), idempotency_key="a")
    with pytest.raises(InsufficientBalance):
        referral_transfer(user=inviter, amount=usd("3.01"), idempotency_key="b")
    referral_transfer(user=inviter, amount=usd("3"), idempotency_key="c")
    referral_transfer(user=inviter, amount=usd("3"), idempotency_key="c")  # a retried request moves it once
    assert wallet_statistics(user=inviter).balance == usd("3.50")
    assert referral_stats(user=inviter).proceeds == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_transfers_never_move_more_than_the_proceeds(rules):
    inviter, invitee = invited_pair()
    top_up(invitee, "100")  # $11 of proceeds
    results, errors = run_concurrently(
        lambda i: referral_transfer(user=inviter, amount=usd("2"), idempotency_key=f"k{i}"), [(i,) for i in range(30)]
    )
    assert len(results) == 5 and all(isinstance(e, InsufficientBalance) for e in errors)
    assert referral_stats(user=inviter).proceeds == usd("1")
    assert wallet_statistics(user=inviter).balance == usd("10.50")
    assert Transaction.objects.filter(kind="referral_transfer").count() == 5


@pytest.mark.django_db
def test_referrals_api_and_pages(client, rules):
    inviter, invitee = invited_pair()
    top_up(invitee, "100")
    client.force_login(inviter)
    body = client.get("/api/v1/referrals").json()
    assert (body["proceeds"], body["total_revenue"], body["invited"], body["min_transfer"]) == ("11.00", "11.00", 1, "1.00")
    assert body["invite_link"].endswith(f"/r/{body['invite_code']}/")
    moved = client.post("/api/v1/referrals/transfer", {"amount": "4"}, content_type="application/json")
    assert moved.status_code == 200 and moved.json()["proceeds"] == "7.00"
    too_much = client.post("/api/v1/referrals/transfer", {"amount": "70"}, content_type="application/json")
    assert too_much.status_code == 402
    page = client.get("/invite/").content.decode()
    assert "Proceeds to be used" in page and "$7.00" in page and body["invite_link"] in page
    assert invitee.email not in page and invitee.email[:2] + "***@" in page
    assert "Invite rewards" in client.get("/wallet/").content.decode()

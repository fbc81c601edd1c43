from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from fractions import Fraction

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from referrals.models import InviteCode, Referral, ReferralReward, RewardRule, email_mask
from synstar.accounts.selectors import TRANSFER, account_policy_for
from synstar.db import atomic_with_retry
from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format
from synstar.money import format_usd, round_half_up
from wallet.models import Account, SystemAccount, Transaction
from wallet.services.ledger import (
    Line,
    main_account,
    posting_create,
    referral_account,
    system_account_id,
)

logger = logging.getLogger(__name__)
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


# Where the invite landing page keeps the code until signup completes (synstar.onboarding reads it).
INVITE_SESSION_KEY = "referrals.invite_code"


def invite_code_for(*, user) -> InviteCode:
    existing = InviteCode.objects.filter(user=user).first()
    if existing:
        return existing
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return InviteCode.objects.create(user=user, code="".join(secrets.choice(ALPHABET) for _ in range(8)))
        except IntegrityError:
            existing = InviteCode.objects.filter(user=user).first()
            if existing:
                return existing
    raise RuntimeError("could not allocate an invite code")


def referral_record(*, invitee, code: str) -> Referral | None:
    """At signup: remember who invited the new user. Unknown codes and self-referral are ignored."""
    invite = InviteCode.objects.filter(code=(code or "").strip().upper()).select_related("user").first()
    if invite is None or invite.user_id == invitee.pk:
        return None
    referral, _ = Referral.objects.get_or_create(invitee=invitee, defaults={"inviter": invite.user})
    return referral


def active_rule() -> RewardRule | None:
    return RewardRule.objects.filter(is_active=True).first()


def reward_accrue(*, order) -> ReferralReward | None:
    """On a completed top-up (inside its transaction): accrue the inviter's reward, once per order."""
    referral = Referral.objects.filter(invitee_id=order.user_id).first()
    rule = active_rule()
    if referral is None or rule is None:
        return None
    if rule.window_days is not None and order.created_at > referral.created_at + timedelta(days=rule.window_days):
        return None
    amount = round_half_up(Fraction(order.amount) * Fraction(rule.commission_percent) / 100)
    first = not ReferralReward.objects.filter(referral=referral).exists()
    if first:
        amount += rule.first_topup_reward
    if rule.cap_per_invitee is not None:
        earned = ReferralReward.objects.filter(referral=referral).aggregate(
            s=Sum(F("amount") - F("reversed_amount")))["s"] or 0
        amount = max(0, min(amount, rule.cap_per_invitee - earned))
    if amount <= 0:
        return None
    reward, created = ReferralReward.objects.get_or_create(order=order, defaults={"referral": referral, "amount": amount})
    if created:
        posting_create(
            kind=Transaction.Kind.REFERRAL_REWARD,
            idempotency_key=f"referral-reward:{order.order_no}",
            lines=[Line(system_account_id(SystemAccount.REFERRAL_REWARDS), -amount),
                   Line(referral_account(user=referral.inviter).pk, amount)],
            description=f"Invite reward: top-up by {email_mask(order.user.email)}",
        )
    return reward


def reward_reverse(*, order) -> None:
    """On a refund (inside its transaction): reverse the reward in proportion to the cash refunded,
    from the inviter's proceeds; what they already transferred out is recorded as a shortfall."""
    reward = ReferralReward.objects.select_for_update().filter(order=order).select_related("referral").first()
    if reward is None or reward.amount == 0:
        return
    order.refresh_from_db(fields=["cash_refunded", "amount"])
    due = round_half_up(Fraction(reward.amount) * Fraction(min(order.cash_refunded, order.amount), order.amount))
    to_reverse = due - reward.reversed_amount - reward.reversal_shortfall
    if to_reverse <= 0:
        return
    proceeds = Account.objects.select_for_update().get(user=reward.referral.inviter, kind=Account.Kind.REFERRAL)
    take = min(to_reverse, proceeds.balance)
    if take:
        posting_create(
            kind=Transaction.Kind.REFERRAL_REVERSAL,
            idempotency_key=f"referral-reversal:{order.order_no}:{reward.reversed_amount + take}",
            lines=[Line(proceeds.pk, -take), Line(system_account_id(SystemAccount.REFERRAL_REWARDS), take)],
            description=f"Invite reward reversed: refund of {order.order_no}",
        )
    ReferralReward.objects.filter(pk=reward.pk).update(
        reversed_amount=F("reversed_amount") + take, reversal_shortfall=F("reversal_shortfall") + (to_reverse - take)
    )
    if to_reverse - take:
        logger.warning("referral reversal shortfall of %s on order %s", to_reverse - take, order.order_no)


@atomic_with_retry
def referral_transfer(*, user, amount: int, idempotency_key: str) -> Transaction:
    """Move invite proceeds to the spendable balance; never more than the proceeds (conditional update)."""
    rule = active_rule()
    minimum = rule.min_transfer if rule else 0
    if amount <= 0:
        raise InvalidRequest(_("The amount must be positive."), code="invalid_amount")
    if amount < minimum:
        raise InvalidRequest(lazy_format(_("The minimum transfer is $%(amount)s."), amount=format_usd(minimum)), code="amount_too_small")
    refusal = account_policy_for(user=user).refusal(TRANSFER)
    if refusal is not None:
        raise refusal
    return posting_create(
        kind=Transaction.Kind.REFERRAL_TRANSFER,
        idempotency_key=f"referral-transfer:{user.pk}:{idempotency_key}",
        lines=[Line(referral_account(user=user).pk, -amount), Line(main_account(user=user).pk, amount)],
        description=gettext_noop("Invite proceeds transferred to balance"),  # translated when read
    )



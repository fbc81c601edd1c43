"""Signing up, across the apps: the account (accounts), its ledger accounts and signup grant (wallet), its
own invite code and who invited it (referrals). The one place that knows all three; the allauth adapter
and the admin's "add user" call it."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction

from referrals.services import INVITE_SESSION_KEY, invite_code_for, referral_record
from synstar.accounts.models import User
from synstar.accounts.services import user_status_set
from wallet.services.ledger import signup_grant_issue


@transaction.atomic
def user_create(*, email: str, password: str | None, country: str = "", is_staff: bool = False, invite_code: str = "") -> User:
    """A new account with its ledger accounts, the one-time signup grant and its inviter, if any."""
    manager = User.objects
    create = manager.create_superuser if is_staff else manager.create_user
    user = create(email=email, password=password, country=country)
    user_signup_complete(user=user, invite_code=invite_code)
    return user


def user_signup_complete(*, user: User, invite_code: str = "") -> None:
    """Everything a new account gets: ledger accounts, the signup grant (once, by its key), an invite
    code of its own, and who invited it. Safe to call again."""
    signup_grant_issue(user=user)
    invite_code_for(user=user)
    if invite_code:
        referral_record(invitee=user, code=invite_code)


def user_save_from_admin(*, user: User, created: bool, actor: User, status_change: tuple[str, str, str] | None = None) -> User:
    """An operator saved a user in admin: the profile as edited; the status only through user_status_set
    (with the operator and their reason, recorded); a user added there is onboarded like a signup."""
    if status_change is not None and not created:
        original = User.objects.get(pk=user.pk)
        user.status, user.review_reason = original.status, original.review_reason  # changed below, with its record
    with transaction.atomic():
        user.save()
        if created:
            user_signup_complete(user=user)
    if status_change is not None and not created:
        status, review_reason, note = status_change
        user = user_status_set(user=user, status=status, review_reason=review_reason, note=note, actor=actor)
    return user


class AccountAdapter(DefaultAccountAdapter):
    """allauth's signup, completed by the onboarding above in the same transaction."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        if commit:
            with transaction.atomic():
                user.save()
                user_signup_complete(user=user, invite_code=request.session.pop(INVITE_SESSION_KEY, "") if request else "")
        return user

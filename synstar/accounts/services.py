from __future__ import annotations

from django.db import transaction

from synstar.accounts.models import User, UserStatusChange
from synstar.errors import InvalidRequest
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
    code of its own, and who invited it."""
    from referrals.services import invite_code_for, referral_record

    signup_grant_issue(user=user)
    invite_code_for(user=user)
    if invite_code:
        referral_record(invitee=user, code=invite_code)


@transaction.atomic
def user_status_set(*, user: User, status: str, review_reason: str = "", note: str, actor: User | None) -> User:
    """Change an account's status (active, under review with a reason, suspended), recording who and why."""
    note = (note or "").strip()
    if status not in User.Status.values:
        raise InvalidRequest(f"Unknown status {status!r}.", code="invalid_status")
    if status == User.Status.UNDER_REVIEW and review_reason not in {"payment", "risk", "compliance"}:
        raise InvalidRequest("An account under review needs a reason: payment, risk or compliance.", code="reason_required")
    if status != User.Status.UNDER_REVIEW:
        review_reason = ""
    if not note:
        raise InvalidRequest("Say why the status changes.", code="note_required")
    locked = User.objects.select_for_update().get(pk=user.pk)
    UserStatusChange.objects.create(
        user=locked,
        old_status=locked.status,
        new_status=status,
        review_reason=review_reason,
        note=note,
        actor=actor,
    )
    locked.status = status
    locked.review_reason = review_reason
    locked.status_note = note
    locked.save(update_fields=["status", "review_reason", "status_note"])
    return locked

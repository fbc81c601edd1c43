from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from synstar.accounts.models import User, UserStatusChange
from synstar.accounts.selectors import time_zones
from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format


@transaction.atomic
def user_status_set(*, user: User, status: str, review_reason: str = "", note: str, actor: User | None) -> User:
    """Change an account's status (active, under review with a reason, suspended), recording who and why."""
    note = (note or "").strip()
    if status not in User.Status.values:
        raise InvalidRequest(lazy_format(_("Unknown status %(status)s."), status=repr(status)), code="invalid_status")
    if status == User.Status.UNDER_REVIEW and review_reason not in {"payment", "risk", "compliance"}:
        raise InvalidRequest(_("An account under review needs a reason: payment, risk or compliance."), code="reason_required")
    if status != User.Status.UNDER_REVIEW:
        review_reason = ""
    if not note:
        raise InvalidRequest(_("Say why the status changes."), code="note_required")
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


def user_language_set(*, user: User, language: str) -> User:
    """The account's console language: a code of settings.LANGUAGES, or "" for the browser's."""
    if language and language not in {code for code, _name in settings.LANGUAGES}:
        raise InvalidRequest(lazy_format(_("Unknown language %(language)s."), language=language), code="invalid_language")
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return user


def user_time_zone_set(*, user: User, time_zone: str) -> User:
    """The zone the console shows this user's times in: an IANA name, or empty for the browser's."""
    time_zone = (time_zone or "").strip()
    if time_zone and time_zone not in time_zones():
        raise InvalidRequest(_("Choose a time zone from the list."), code="invalid_time_zone")
    User.objects.filter(pk=user.pk).update(time_zone=time_zone)
    user.time_zone = time_zone
    return user

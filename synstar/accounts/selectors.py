"""The account-status policy: what an account in each status may do. One place, used by every service
that holds, tops up, redeems or transfers, by the metering hot path (from the status columns it reads)
and by the console's banner. Also the time zone a user's times are shown in."""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.utils.functional import Promise, lazy
from django.utils.translation import gettext_lazy as _

from synstar.accounts.models import User
from synstar.errors import PermissionDenied
from synstar.i18n import lazy_format

_lower = lazy(lambda text: str(text).lower(), str)  # a lazy label, lower-cased when read

HOLD, TOP_UP, REDEEM, TRANSFER = "hold", "top_up", "redeem", "transfer"


@dataclass(frozen=True)
class AccountPolicy:
    status: str
    review_reason: str = ""
    is_active: bool = True

    @property
    def review_label(self) -> str | Promise:
        return _lower(User.ReviewReason(self.review_reason).label) if self.review_reason else _("account")

    def refusal(self, action: str) -> PermissionDenied | None:
        """Why the account may not do `action` now, as the error to raise; None when it may."""
        suspended = self.status == User.Status.SUSPENDED
        review = self.status == User.Status.UNDER_REVIEW
        if action == HOLD:
            if suspended:
                return PermissionDenied(_("The account is suspended; contact support."), code="account_suspended")
            if review:
                return PermissionDenied(lazy_format(_("The account is under %(review_label)s review; requests are paused."), review_label=self.review_label),
                                        code="account_under_review", reason=self.review_reason)
            if not self.is_active:
                return PermissionDenied(_("The account is deactivated."), code="account_inactive")
            return None
        if action == TOP_UP:
            if suspended:
                return PermissionDenied(_("The account is suspended; contact support."), code="account_suspended")
            if review and self.review_reason == User.ReviewReason.PAYMENT:
                return PermissionDenied(_("Top-ups are paused while the account is under payment review."),
                                        code="account_under_review")
            return None
        if action == REDEEM:
            return PermissionDenied(_("Suspended accounts cannot redeem codes."), code="account_suspended") if suspended else None
        if action == TRANSFER:
            return (PermissionDenied(_("Suspended accounts cannot transfer proceeds."), code="account_suspended")
                    if suspended else None)
        raise ValueError(f"unknown action {action!r}")

    def allows(self, action: str) -> bool:
        return self.refusal(action) is None

    @property
    def banner(self) -> str | Promise:
        """What the console says at the top of every page, or "" for an active account."""
        if self.status == User.Status.SUSPENDED:
            return _("Your account is suspended. API requests and payments are disabled; contact support.")
        if self.status == User.Status.UNDER_REVIEW:
            return lazy_format(_("Your account is under %(review_label)s review. API requests are paused until the review ends."), review_label=self.review_label)
        return ""


def account_policy(*, status: str, review_reason: str = "", is_active: bool = True) -> AccountPolicy:
    return AccountPolicy(status=status, review_reason=review_reason or "", is_active=is_active)


def account_policy_for(*, user: User) -> AccountPolicy:
    return account_policy(status=user.status, review_reason=user.review_reason, is_active=user.is_active)


def account_action_check(*, user: User, action: str) -> None:
    """Raise the refusal if the account may not do `action` (reads the status as it is now)."""
    user.refresh_from_db(fields=["status", "review_reason", "is_active"])  # a review may have just started
    refusal = account_policy_for(user=user).refusal(action)
    if refusal is not None:
        raise refusal


@functools.cache
def time_zones() -> frozenset[str]:
    """Every IANA zone name this system knows (the choices of the time zone setting)."""
    return frozenset(zoneinfo.available_timezones())


def time_zone_for(*, user, browser_zone: str = "") -> str:
    """The zone to show times in: the user's setting, else the browser's (reported by the page), else the site's."""
    for zone in (getattr(user, "time_zone", "") if user is not None and user.is_authenticated else "", browser_zone):
        if zone and zone in time_zones():
            return zone
    return settings.TIME_ZONE

"""Reads: the token groups a user may use, and the user's API tokens."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from billing.models import ApiToken, TokenGroup


def groups_for_user(*, user) -> QuerySet[TokenGroup]:
    if user is None or not user.is_authenticated:
        return TokenGroup.objects.filter(is_public=True).select_related("tier")
    return (
        TokenGroup.objects.filter(Q(is_public=True) | Q(allowed_users=user)).distinct().select_related("tier")
    )


def group_allowed(*, user, group: TokenGroup) -> bool:
    return group.is_public or group.allowed_users.filter(pk=user.pk).exists()




def tokens_for_user(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user, deleted_at__isnull=True).select_related("group__tier")

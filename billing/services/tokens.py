"""Writes: users' API tokens and gateway keys, and authenticating their secret keys.

Secret keys: `sk-` for users' API tokens, `gw-` for gateways. Shown once, stored as sha256.

The keys carry 238 bits of randomness, so an unsalted fast hash is safe (as GitHub and Stripe tokens
are): no dictionary to attack, and the lookup by hash stays one indexed query per request."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import string
from datetime import datetime
from time import monotonic

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import ApiToken, BudgetPeriod, GatewayKey, ModelPrice, TokenGroup
from billing.selectors.tokens import group_allowed
from synstar.db import atomic_with_retry
from synstar.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound, PermissionDenied
from synstar.i18n import lazy_format
from synstar.money import format_usd

ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 40
PREFIX_LENGTH = 10  # "sk-" + 7 characters shown in lists


def key_generate(kind: str) -> str:
    assert kind in ("sk", "gw")
    return f"{kind}-" + "".join(secrets.choice(ALPHABET) for _ in range(KEY_LENGTH))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def key_kind(key: str) -> str | None:
    if key.startswith("sk-"):
        return "sk"
    if key.startswith("gw-"):
        return "gw"
    return None


def _clean_models(models: list[str] | None) -> list[str]:
    names = sorted({m.strip() for m in (models or []) if m and m.strip()})
    known = set(ModelPrice.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidRequest(lazy_format(_("Unknown model(s) in the allow-list: %(join)s."), join=', '.join(unknown)), code="model_not_found")
    return names


def _clean_ips(ips: list[str] | None) -> list[str]:
    cleaned = []
    for raw in ips or []:
        raw = raw.strip()
        if not raw:
            continue
        try:
            cleaned.append(str(ipaddress.ip_network(raw, strict=False)))
        except ValueError:
            raise InvalidRequest(lazy_format(_("%(raw)s is not an IP address or CIDR range."), raw=repr(raw)), code="invalid_ip") from None
    return sorted(set(cleaned))


def _check_group(*, user, group: TokenGroup) -> None:
    if not group_allowed(user=user, group=group):
        raise PermissionDenied(lazy_format(_("The group %(name)s is not available to your account."), name=repr(group.name)), code="group_not_allowed")


def default_group() -> TokenGroup:
    group = TokenGroup.objects.filter(is_default=True).first() or TokenGroup.objects.filter(is_public=True).first()
    if group is None:
        raise InvalidRequest(_("No token group is configured yet; ask an administrator."), code="no_group")
    return group


@transaction.atomic
def token_create(
    *,
    user,
    name: str,
    group: TokenGroup | None = None,
    quota: int | None = None,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    allowed_ips: list[str] | None = None,
    can_read_account: bool = False,
    budget: int | None = None,
    budget_period: str = BudgetPeriod.MONTH,
    rpm_limit: int | None = None,
) -> tuple[ApiToken, str]:
    """A new API token; returns it with the raw `sk-` key, which is never stored or shown again.

    A token serves inference; `can_read_account` also lets it read the account through the API."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidRequest(_("A token needs a name of 1-100 characters."), code="invalid_name")
    group = group or default_group()
    _check_group(user=user, group=group)
    if quota is not None and quota < 0:
        raise InvalidRequest(_("The quota must not be negative."), code="invalid_quota")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidRequest(_("The expiry must be in the future."), code="invalid_expiry")
    _check_limits(budget=budget, budget_period=budget_period, rpm_limit=rpm_limit)
    raw = key_generate("sk")
    token = ApiToken.objects.create(
        user=user,
        name=name,
        group=group,
        key_hash=key_hash(raw),
        key_prefix=key_prefix(raw),
        quota=quota,
        expires_at=expires_at,
        allowed_models=_clean_models(allowed_models),
        allowed_ips=_clean_ips(allowed_ips),
        can_read_account=bool(can_read_account),
        budget=budget,
        budget_period=budget_period,
        rpm_limit=rpm_limit or None,
    )
    return token, raw


def _check_limits(*, budget, budget_period, rpm_limit) -> None:
    if budget is not None and budget < 0:
        raise InvalidRequest(_("The budget must not be negative."), code="invalid_budget")
    if budget_period not in BudgetPeriod.values:
        raise InvalidRequest(_("The budget period must be day, week or month."), code="invalid_budget_period")
    if rpm_limit is not None and not (0 <= rpm_limit <= 1_000_000):
        raise InvalidRequest(_("Requests per minute must be between 1 and 1,000,000."), code="invalid_rpm_limit")


_UNSET = object()


@atomic_with_retry
def token_update(
    *,
    token_id: int,
    user,
    name=_UNSET,
    group=_UNSET,
    quota=_UNSET,
    is_enabled=_UNSET,
    expires_at=_UNSET,
    allowed_models=_UNSET,
    allowed_ips=_UNSET,
    can_read_account=_UNSET,
    budget=_UNSET,
    budget_period=_UNSET,
    rpm_limit=_UNSET,
) -> ApiToken:
    """Change a token's settings. A quota below what is already used (or held) is refused. A new budget
    period starts counting from zero; a changed quota or budget re-arms its 80% / 100% alerts."""
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user, deleted_at__isnull=True).first()
    if token is None:
        raise NotFound(_("No such API token."), code="token_not_found")
    if name is not _UNSET:
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise InvalidRequest(_("A token needs a name of 1-100 characters."), code="invalid_name")
        token.name = name
    if group is not _UNSET:
        _check_group(user=user, group=group)
        token.group = group
    if quota is not _UNSET:
        if quota is not None and quota < token.used + token.held:
            raise InvalidRequest(
                lazy_format(_("The quota cannot be below what this token has already used ($%(amount)s, including in-flight requests)."), amount=format_usd(token.used + token.held, places=None)),
                code="quota_below_used",
            )
        if quota != token.quota:
            token.alert_quota_level = 0
        token.quota = quota
    if budget is not _UNSET or budget_period is not _UNSET or rpm_limit is not _UNSET:
        new_budget = token.budget if budget is _UNSET else budget
        new_period = token.budget_period if budget_period is _UNSET else budget_period
        new_rpm = token.rpm_limit if rpm_limit is _UNSET else rpm_limit
        _check_limits(budget=new_budget, budget_period=new_period, rpm_limit=new_rpm)
        if new_period != token.budget_period:
            token.period_start, token.period_used = None, 0
        if new_period != token.budget_period or new_budget != token.budget:
            token.alert_budget_level, token.alert_budget_period = 0, None
        token.budget, token.budget_period, token.rpm_limit = new_budget, new_period, new_rpm or None
    if is_enabled is not _UNSET:
        token.is_enabled = bool(is_enabled)
    if expires_at is not _UNSET:
        token.expires_at = expires_at
    if allowed_models is not _UNSET:
        token.allowed_models = _clean_models(allowed_models)
    if allowed_ips is not _UNSET:
        token.allowed_ips = _clean_ips(allowed_ips)
    if can_read_account is not _UNSET:
        token.can_read_account = bool(can_read_account)
    token.save()
    return token


@transaction.atomic
def token_delete(*, token_id: int, user) -> None:
    """Delete a token: it stops working at once; its usage records stay. In-flight requests still settle."""
    updated = ApiToken.objects.filter(pk=token_id, user=user, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), is_enabled=False
    )
    if not updated:
        raise NotFound(_("No such API token."), code="token_not_found")


def gateway_key_create(*, name: str) -> tuple[GatewayKey, str]:
    raw = key_generate("gw")
    try:
        with transaction.atomic():
            gateway = GatewayKey.objects.create(name=name, key_hash=key_hash(raw), key_prefix=key_prefix(raw))
    except IntegrityError:
        raise Conflict(lazy_format(_("A gateway key named %(name)s already exists."), name=repr(name)), code="duplicate_name") from None
    return gateway, raw


def token_authenticate(*, raw_key: str) -> ApiToken:
    """The live token for an `sk-` key, or AuthenticationFailed (a `gw-` key is told apart)."""
    kind = key_kind(raw_key or "")
    if kind == "gw":
        raise AuthenticationFailed(
            _("This is a gateway key; this endpoint needs a user's sk- API token."), code="wrong_key_type"
        )
    token = None
    if kind == "sk":
        token = (
            ApiToken.objects.filter(key_hash=key_hash(raw_key), deleted_at__isnull=True)
            .select_related("user", "group__tier")
            .first()
        )
    if token is None:
        raise AuthenticationFailed(_("Invalid API token."), code="invalid_api_key")
    return token


# Every metering request authenticates its gateway: an active key found is kept in this process for
# GATEWAY_KEY_CACHE_SECONDS, so the hold's request runs no query for it. A key deactivated or deleted in
# admin therefore stops working within that time in every process (0 turns the cache off). Keys not found
# are never kept: a new key works at once, and garbage cannot fill the dict. The cached GatewayKey is shared
# by the requests of its process: callers read it, never change it.
_gateways: dict[str, tuple[float, GatewayKey]] = {}
_GATEWAYS_KEPT = 1000  # more distinct live keys than any deployment has; past it the dict starts again


def gateway_authenticate(*, raw_key: str) -> GatewayKey:
    kind = key_kind(raw_key or "")
    if kind == "sk":
        raise AuthenticationFailed(
            _("This is a user's API token; metering endpoints need a gateway (gw-) key."), code="wrong_key_type"
        )
    gateway = None
    if kind == "gw":
        gateway = _gateway_active(key_hash(raw_key))
    if gateway is None:
        raise AuthenticationFailed(_("Invalid gateway key."), code="invalid_gateway_key")
    return gateway


def _gateway_active(hashed: str) -> GatewayKey | None:
    now = monotonic()
    kept = _gateways.get(hashed)
    if kept is not None and kept[0] > now:
        return kept[1]
    gateway = GatewayKey.objects.filter(key_hash=hashed, is_active=True).first()
    ttl = settings.GATEWAY_KEY_CACHE_SECONDS
    if gateway is None or ttl <= 0:
        _gateways.pop(hashed, None)
        return gateway
    if len(_gateways) >= _GATEWAYS_KEPT:
        _gateways.clear()
    _gateways[hashed] = (now + ttl, gateway)
    return gateway

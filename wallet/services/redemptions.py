"""Redemption codes: batch generation (plaintext only in the one CSV download), and redemption,
atomic under any concurrency (the code row is locked; limits are checked and consumed under it)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from synstar.accounts.selectors import REDEEM, account_policy_for
from synstar.db import atomic_with_retry
from synstar.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from synstar.i18n import lazy_format
from synstar.money import format_usd
from wallet.models import (
    CodeBatch,
    Redemption,
    RedemptionCode,
    SystemAccount,
    TopUpOrder,
    Transaction,
)
from wallet.services.ledger import Line, main_account, posting_create, system_account_id

# No 0/O, 1/I/L: unambiguous when read aloud or typed from a card. 31 symbols x 16 = 79 bits.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16


class CodeNotFound(NotFound):
    code = "code_not_found"
    default_message = _("This code does not exist. Check it and try again.")


class CodeExpired(Conflict):
    code = "code_expired"
    default_message = _("This code has expired.")


class CodeUsedUp(Conflict):
    code = "code_used_up"
    default_message = _("This code has been fully redeemed.")


class CodeAlreadyRedeemed(Conflict):
    code = "code_already_redeemed"
    default_message = _("You have already redeemed this code.")


class CodeNotEligible(PermissionDenied):
    code = "code_not_eligible"


class CodeCountryNotAllowed(PermissionDenied):
    code = "code_country_not_allowed"
    default_message = _("This code is not available in your country.")


class CodeDisabled(PermissionDenied):
    code = "code_disabled"
    default_message = _("This code has been disabled.")


def code_normalize(raw: str) -> str:
    return re.sub(r"[\s\-]", "", (raw or "")).upper()


def code_hash(code: str) -> str:
    """Keyed hash: even with the table and a guess of the format, codes cannot be looked up offline."""
    return hmac.new(settings.SECRET_KEY.encode(), code_normalize(code).encode(), hashlib.sha256).hexdigest()


def code_format(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


@transaction.atomic
def batch_generate(*, campaign: str, value: int, count: int, created_by, expires_at=None, max_uses: int = 1,
                   per_account_limit: int = 1, new_accounts_only: bool = False, no_topup_only: bool = False,
                   allowed_users=(), allowed_countries=(), is_promotional: bool = True) -> tuple[CodeBatch, str]:
    """Create a batch and its codes; returns the batch and its CSV, the only place the codes appear."""
    if not 1 <= count <= 100_000:
        raise InvalidRequest(_("A batch has 1 to 100,000 codes."), code="invalid_count")
    if value <= 0:
        raise InvalidRequest(_("The code value must be positive."), code="invalid_amount")
    batch = CodeBatch.objects.create(
        campaign=campaign.strip()[:100] or "untitled", value=value, count=count, expires_at=expires_at, max_uses=max_uses,
        per_account_limit=per_account_limit, new_accounts_only=new_accounts_only, no_topup_only=no_topup_only,
        allowed_countries=sorted({c.upper() for c in allowed_countries}), is_promotional=is_promotional, created_by=created_by,
    )
    batch.allowed_users.set(allowed_users)
    codes = ["".join(secrets.choice(ALPHABET) for _i in range(CODE_LENGTH)) for _n in range(count)]
    RedemptionCode.objects.bulk_create(
        [RedemptionCode(batch=batch, code_hash=code_hash(c), hint=c[-4:]) for c in codes], batch_size=2000
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "value_usd", "expires_at", "campaign", "batch"])
    for c in codes:
        writer.writerow([code_format(c), format_usd(value, places=None), expires_at.isoformat() if expires_at else "", batch.campaign, batch.pk])
    return batch, out.getvalue()


# --- rate limiting of failed attempts -------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    key: str
    allowed: int


def _limits(user, ip: str | None) -> list[Limit]:
    limits = [Limit(f"redeem-fail:user:{user.pk}", settings.REDEEM_FAILURES_PER_USER)]
    if ip:
        limits.append(Limit(f"redeem-fail:ip:{ip}", settings.REDEEM_FAILURES_PER_IP))
    return limits


def _counter_incr(key: str, window: int) -> int:
    """Atomically count one more in `key` (Redis: SET NX then INCR), starting a window if there is none."""
    for _attempt in range(3):
        cache.add(key, 0, window)
        try:
            return cache.incr(key)
        except ValueError:  # the window expired between add and incr: start a new one
            continue
    raise RateLimited(_("Too many attempts; try again in a few minutes."), code="too_many_attempts")


def _attempt_take(user, ip) -> list[Limit]:
    """Count this attempt against every limit BEFORE the code is checked, so a burst of concurrent
    attempts cannot all pass a read-then-write check: at most `allowed` of them are ever checked.
    Returns the limits counted; a refused attempt gives its count back."""
    window = settings.REDEEM_FAILURE_WINDOW_SECONDS
    taken = []
    for limit in _limits(user, ip):
        count = _counter_incr(limit.key, window)
        taken.append(limit)
        if count > limit.allowed:
            _attempt_give_back(taken)
            raise RateLimited(_("Too many failed attempts; try again in a few minutes."), code="too_many_attempts")
    return taken


def _attempt_give_back(taken: list[Limit]) -> None:
    """Only failures count: an attempt that succeeded (or was refused before any check) is uncounted."""
    for limit in taken:
        try:
            cache.decr(limit.key)
        except ValueError:  # the window has expired meanwhile
            pass


# --- redemption -----------------------------------------------------------------------------------

FAILURES = (CodeNotFound, CodeExpired, CodeUsedUp, CodeAlreadyRedeemed, CodeNotEligible, CodeCountryNotAllowed, CodeDisabled)


def code_redeem(*, user, raw_code: str, ip: str | None = None) -> Redemption:
    """Redeem a code for `user`. Each failure raises an error that says why; failures are rate limited."""
    taken = _attempt_take(user, ip)
    try:
        redemption = _redeem(user=user, raw_code=raw_code, ip=ip)
    except FAILURES:
        raise  # the attempt stays counted
    except BaseException:
        _attempt_give_back(taken)
        raise
    _attempt_give_back(taken)
    return redemption


@atomic_with_retry
def _redeem(*, user, raw_code: str, ip: str | None) -> Redemption:
    normalized = code_normalize(raw_code)
    if len(normalized) != CODE_LENGTH or any(ch not in ALPHABET for ch in normalized):
        raise CodeNotFound()
    code = (
        RedemptionCode.objects.select_for_update(of=("self",))
        .select_related("batch")
        .filter(code_hash=code_hash(normalized))
        .first()
    )
    if code is None:
        raise CodeNotFound()
    batch = code.batch
    user.refresh_from_db(fields=["country", "date_joined", "status"])
    if code.is_disabled or batch.is_disabled:
        raise CodeDisabled()
    if batch.expires_at is not None and batch.expires_at <= timezone.now():
        raise CodeExpired()
    mine = Redemption.objects.filter(code=code, user=user).count()
    if mine >= batch.per_account_limit:
        raise CodeAlreadyRedeemed()
    if code.uses >= batch.max_uses:
        raise CodeUsedUp()
    _check_eligible(batch=batch, user=user)
    RedemptionCode.objects.filter(pk=code.pk).update(uses=F("uses") + 1)
    redemption = Redemption.objects.create(code=code, user=user, amount=batch.value, ip=ip)
    source = SystemAccount.PROMOTIONS if batch.is_promotional else SystemAccount.REDEMPTION
    redemption.transaction = posting_create(
        kind=Transaction.Kind.REDEMPTION,
        idempotency_key=f"redeem:{redemption.pk}",
        lines=[Line(system_account_id(source), -batch.value), Line(main_account(user=user).pk, batch.value)],
        description=f"Code …{code.hint} ({batch.campaign})",
    )
    redemption.save(update_fields=["transaction"])
    return redemption


def _check_eligible(*, batch: CodeBatch, user) -> None:
    if not account_policy_for(user=user).allows(REDEEM):
        raise CodeNotEligible(_("Suspended accounts cannot redeem codes."))
    country = user.country.code if user.country else ""
    if batch.allowed_countries and country not in batch.allowed_countries:
        raise CodeCountryNotAllowed()
    if batch.allowed_users.exists() and not batch.allowed_users.filter(pk=user.pk).exists():
        raise CodeNotEligible(_("This code is reserved for specific accounts."))
    if batch.new_accounts_only and user.date_joined < timezone.now() - timedelta(days=settings.NEW_ACCOUNT_DAYS):
        raise CodeNotEligible(lazy_format(_("This code is for accounts created in the last %(NEW_ACCOUNT_DAYS)s days."), NEW_ACCOUNT_DAYS=settings.NEW_ACCOUNT_DAYS))
    if batch.no_topup_only and TopUpOrder.objects.filter(user=user, completed_at__isnull=False).exists():
        raise CodeNotEligible(_("This code is for accounts that have not topped up yet."))

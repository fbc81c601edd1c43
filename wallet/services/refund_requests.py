"""Refund requests (issue 13): a user asks for the unused balance of a completed top-up back; admin approves
(the refund service in wallet/services/refunds.py runs) or rejects with a reason; the user is emailed.

Nothing leaves the balance while a request waits. Approval decides again, under the request's lock and then
the refund service's own (order, then account), what is still refundable: credits spent meanwhile are not.
The refund's idempotency key is the request's, so approving twice (two admins at once) refunds once.
Lock order: the refund request, then the top-up order, then the account."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from synstar.db import atomic_with_retry
from synstar.errors import Conflict, InvalidRequest, NotFound
from synstar.i18n import user_language
from wallet.models import Refund, RefundRequest, TopUpOrder
from wallet.providers import ProviderError
from wallet.services.ledger import main_account
from wallet.services.refunds import NothingRefundable, refund_admin_start, refund_quote, refund_submit

logger = logging.getLogger(__name__)


def business_days_after(start: datetime, days: int) -> datetime:
    """`days` business days (Monday to Friday) after `start`, at the same time of day."""
    when = start
    left = days
    while left > 0:
        when += timedelta(days=1)
        if when.weekday() < 5:
            left -= 1
    return when


def refund_request_create(*, user, order_no: str, reason: str) -> RefundRequest:
    """Ask for a refund of a top-up's unused credits. Only a preview of the amount is recorded; nothing
    leaves the balance until an admin approves."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(_("Tell us why you want a refund."), code="missing_field")
    if len(reason) > 2000:
        raise InvalidRequest(_("The reason is too long (at most 2000 characters)."), code="field_too_long")
    order = TopUpOrder.objects.filter(user=user, order_no=(order_no or "").strip()).first()
    if order is None:
        raise NotFound(_("No such top-up."), code="order_not_found")
    account = main_account(user=user)
    quote = refund_quote(order=order, available=account.balance - account.held)
    if quote.cash <= 0:
        raise NothingRefundable(_("Nothing of this top-up is refundable: its credits were used or already refunded."))
    now = timezone.now()
    try:
        with transaction.atomic():
            request = RefundRequest.objects.create(
                user=user, order=order, reason=reason, quoted=quote.cash,
                due_at=business_days_after(now, settings.REFUND_TARGET_BUSINESS_DAYS),
            )
    except IntegrityError:
        raise Conflict(_("A refund request for this top-up is already waiting for review."), code="refund_request_open") from None
    transaction.on_commit(lambda: _email(request_id=request.pk, template="refund_requested"))
    return request


def refund_request_approve(*, request_id: int, actor) -> RefundRequest:
    """Approve: the refund service removes what is still refundable now and asks the provider for it.
    Approving again (or at the same time) returns the request as it is and refunds nothing more."""
    request, refund = _approve(request_id=request_id, actor=actor)
    if refund is None or refund.status != Refund.Status.PENDING:
        return request
    try:
        refund = refund_submit(refund_id=refund.pk)
    except ProviderError as exc:
        if exc.retryable:  # recorded and pending: refunds_resume asks the provider again
            logger.warning("refund request %s: the provider did not answer; the refund stays pending", request_id)
            return request
        return _mark_failed(request_id=request_id, reason=exc.message)
    if refund.status == Refund.Status.FAILED:
        return _mark_failed(request_id=request_id, reason=refund.failure_reason)
    return request


@atomic_with_retry
def _approve(*, request_id: int, actor) -> tuple[RefundRequest, Refund | None]:
    request = RefundRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound(_("No such refund request."))
    if request.status != RefundRequest.Status.REQUESTED:
        return request, None
    try:
        with transaction.atomic():
            refund, _created = refund_admin_start(order_id=request.order_id, key=f"refund-request:{request.pk}", actor=actor,
                                                  reason=f"Refund request {request.pk}: {request.reason}")
    except NothingRefundable:
        request.status = RefundRequest.Status.FAILED
        request.reject_reason = _("Nothing is refundable any more: the credits of this top-up were used or already refunded.")
        request.decided_by, request.decided_at = actor, timezone.now()
        request.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
        transaction.on_commit(lambda: _email(request_id=request_id, template="refund_decided"))
        return request, None
    except Conflict as exc:  # the order is no longer refundable (disputed, refunded)
        request.status = RefundRequest.Status.FAILED
        request.reject_reason = exc.message
        request.decided_by, request.decided_at = actor, timezone.now()
        request.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
        transaction.on_commit(lambda: _email(request_id=request_id, template="refund_decided"))
        return request, None
    request.status = RefundRequest.Status.APPROVED
    request.refund = refund
    request.decided_by, request.decided_at = actor, timezone.now()
    request.save(update_fields=["status", "refund", "decided_by", "decided_at"])
    transaction.on_commit(lambda: _email(request_id=request_id, template="refund_decided"))
    return request, refund


def refund_request_refund_failed(*, refund_id: int, reason: str) -> None:
    """Refund hook: the refund of an approved request failed after approval (the provider refused it later, or
    a retried submission was refused): the request says so and the user is emailed, once."""
    request_id = (RefundRequest.objects.filter(refund_id=refund_id, status=RefundRequest.Status.APPROVED)
                  .values_list("pk", flat=True).first())
    if request_id is not None:
        _mark_failed(request_id=request_id, reason=reason)


@atomic_with_retry
def _mark_failed(*, request_id: int, reason: str) -> RefundRequest:
    """The provider refused the approved refund (its credits are already back): the request says so."""
    request = RefundRequest.objects.select_for_update().get(pk=request_id)
    if request.status == RefundRequest.Status.APPROVED:
        request.status = RefundRequest.Status.FAILED
        request.reject_reason = _("The payment provider refused the refund (%(reason)s); your credits are back.") % {"reason": reason}
        request.save(update_fields=["status", "reject_reason"])
        transaction.on_commit(lambda: _email(request_id=request_id, template="refund_decided"))
    return request


@atomic_with_retry
def refund_request_reject(*, request_id: int, actor, reason: str) -> RefundRequest:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(_("A rejection needs a reason the user can read."), code="missing_field")
    request = RefundRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound(_("No such refund request."))
    if request.status == RefundRequest.Status.REJECTED:
        return request
    if request.status != RefundRequest.Status.REQUESTED:
        raise Conflict(_("This refund request was already decided."), code="refund_request_closed")
    request.status = RefundRequest.Status.REJECTED
    request.reject_reason = reason[:2000]
    request.decided_by, request.decided_at = actor, timezone.now()
    request.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
    transaction.on_commit(lambda: _email(request_id=request_id, template="refund_decided"))
    return request


def _email(*, request_id: int, template: str) -> None:
    """After commit; a mail server that fails is logged and changes nothing about the money."""
    try:
        request = RefundRequest.objects.select_related("user", "order", "refund").get(pk=request_id)
        context = {"request": request, "site_url": settings.SITE_URL, "target_days": settings.REFUND_TARGET_BUSINESS_DAYS}
        with translation.override(user_language(request.user)):  # in the account's language
            subject = " ".join(render_to_string(f"email/{template}_subject.txt", context).split())
            body = render_to_string(f"email/{template}.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [request.user.email])
    except Exception:
        logger.exception("refund request %s: email %s failed", request_id, template)


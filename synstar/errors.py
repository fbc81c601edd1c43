"""One exception hierarchy for the whole product, and the renderers that give every error one shape:

    {"error": {"type": ..., "code": ..., "message": ...}}

Services raise these; the DRF exception handler and the console views render them.

Messages are translated (`code` and `type` stay English): give a lazy message (`gettext_lazy`, or
`synstar.i18n.lazy_format` when it has values in it) and it is read in the language of the request
that renders it (see synstar/i18n.py).
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from synstar.i18n import lazy_format


class SynstarError(Exception):
    status: int = 400
    type: str = "invalid_request_error"
    code: str = "invalid_request"
    default_message: str | Promise = _("The request is invalid.")

    def __init__(self, message: str | Promise | None = None, *, code: str | None = None, **extra: Any) -> None:
        # A lazy message reads as text (a str to its users), in the language active when it is read.
        self.message: str = cast(str, message or self.default_message)
        if code is not None:
            self.code = code
        self.extra = extra
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "code": self.code, "message": str(self.message), **self.extra}}


class InvalidRequest(SynstarError):
    pass


class AuthenticationFailed(SynstarError):
    status = 401
    type = "authentication_error"
    code = "not_authenticated"
    default_message = _("Authentication credentials were not provided or are invalid.")


class PaymentRequired(SynstarError):
    status = 402
    type = "payment_required"
    code = "payment_required"


class InsufficientBalance(PaymentRequired):
    code = "insufficient_balance"
    default_message = _("The available balance is too low for this operation.")


class AccountInDebt(PaymentRequired):
    code = "account_in_debt"
    default_message = _("The account balance is negative; top up to repay it before new requests.")


class PermissionDenied(SynstarError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    default_message = _("You do not have permission to do this.")


class NotFound(SynstarError):
    status = 404
    type = "not_found_error"
    code = "not_found"
    default_message = _("Not found.")


class Conflict(SynstarError):
    status = 409
    type = "conflict_error"
    code = "conflict"
    default_message = _("The request conflicts with the current state.")


class RateLimited(SynstarError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"
    default_message = _("Too many requests; slow down and try again later.")


class ServiceBusy(SynstarError):
    status = 503
    type = "api_error"
    code = "busy"
    default_message = _("The service is busy; try again.")


def _drf_error(exc: drf_exceptions.APIException) -> SynstarError:
    if isinstance(exc, drf_exceptions.ValidationError):
        return InvalidRequest(_validation_message(exc.detail), code="validation_error")
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidRequest(lazy_format(_("Malformed request body: %(detail)s"), detail=exc.detail), code="parse_error")
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return AuthenticationFailed(str(exc.detail))
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, drf_exceptions.NotFound):
        return NotFound(str(exc.detail))
    if isinstance(exc, drf_exceptions.Throttled):
        return RateLimited(str(exc.detail))
    error = SynstarError(str(exc.detail), code=str(exc.default_code))
    error.status = exc.status_code
    error.type = "invalid_request_error" if exc.status_code < 500 else "api_error"
    return error


def _validation_message(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            name = f"{prefix}{field}" if field != "non_field_errors" else prefix.rstrip(".")
            parts.append(_validation_message(value, f"{name}." if name else ""))
        return " ".join(parts)
    if isinstance(detail, list):
        return " ".join(_validation_message(item, prefix) for item in detail)
    field = prefix.rstrip(".")
    return f"{field}: {detail}" if field else str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every API error leaves in the one shape."""
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = PermissionDenied()
    elif isinstance(exc, drf_exceptions.APIException):
        headers = {}
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
        error = _drf_error(exc)
        return Response(error.as_dict(), status=error.status, headers=headers)
    if isinstance(exc, SynstarError):
        return Response(exc.as_dict(), status=exc.status, headers=getattr(exc, "headers", None))
    return None


def json_error(error: SynstarError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=error.status)
